"""The HTTP status and JSON body an env service answers each error with, written once.

Used by the FastAPI exception handlers, the v1 step fast path and the session channel (which
carries the same statuses and texts inside its frames), and by the OpenEnv and MCP surfaces
for their error metrics. The status of an exception is that of the nearest class in its MRO
listed in `ERROR_STATUS` (Starlette's own lookup); anything else is an env bug: 500 with the
exception's type and text.
"""

from __future__ import annotations

from pydantic import ValidationError

from envs.actions import ActionParseError
from envs.base import EnvError, NoExpert, StepAfterEnd, UnknownTask
from wire.errors import EpisodeFinished, ServerFull, SessionNotFound


class ExpertDisabled(Exception):
    """The expert route is off on this service (`--no-expert`)."""


ERROR_STATUS: dict[type[Exception], int] = {
    SessionNotFound: 404,
    UnknownTask: 404,
    NoExpert: 404,
    ExpertDisabled: 403,
    EpisodeFinished: 409,
    StepAfterEnd: 409,
    EnvError: 409,
    ActionParseError: 422,
    ValidationError: 422,
    ServerFull: 429,
}

MAX_DETAIL_CHARS = 4000


def status_of(exc: BaseException) -> int:
    """The status the service answers `exc` with: a listed class' status, else 500."""
    for cls in type(exc).__mro__:
        status = ERROR_STATUS.get(cls)  # type: ignore[call-overload]
        if status is not None:
            return status
    return 500


def detail_of(exc: BaseException) -> str:
    """The `detail` text: the message of a listed error; type and message of an env bug (500)."""
    if status_of(exc) == 500:
        return f"{type(exc).__name__}: {exc}"[:MAX_DETAIL_CHARS]
    return str(exc)


def retry_after_of(exc: BaseException) -> int | None:
    """Seconds to wait before retrying (a full table, a client over its quota), else None."""
    return exc.retry_after if isinstance(exc, ServerFull) else None
