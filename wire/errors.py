"""The env API's error vocabulary, one definition each, shared by the service and its clients.

The service raises the `EnvRequestError` subclasses and answers with their `status`; the
clients map a non-2xx answer back to the same class (`error_for`). The collector relies on
a three-way split:

* the env saying no (`EnvRequestError`, a 4xx): a refused request;
* the env failing on its own (`EnvServiceError`, a 500): an unexpected exception in env code,
  answered with the exception's text. A bug of the env, not of the agent and not of the
  infrastructure: the collector records it as `env_error` and it counts as not solved;
* the env not answering (`EnvUnavailable`: transport failure, timeout, 502/503/504 and any
  other 5xx): an infrastructure failure, retried, never scored.
"""

from __future__ import annotations

from typing import Any


class EnvClientError(Exception):
    """Base of every error of the env API (raised by the service, or by a client for an answer)."""


class EnvUnavailable(EnvClientError):
    """Transport failure, timeout, or 5xx: the env could not answer."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class EnvServiceError(EnvClientError):
    """The env service answered 500: its env code raised an unexpected exception (`detail` is its text)."""

    status = 500

    def __init__(self, detail: str, status: int = 500) -> None:
        super().__init__(detail)
        self.detail = detail
        self.status = status


class EnvRequestError(EnvClientError):
    """The env answered with a 4xx status."""

    status = 400

    def __init__(self, detail: str, status: int | None = None, retry_after: float | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        if status is not None:
            self.status = status
        self.retry_after = retry_after


class SessionNotFound(EnvRequestError):
    """No open session with that id (never created, closed, or reaped)."""

    status = 404


class EpisodeFinished(EnvRequestError):
    """A step on a session whose episode has ended."""

    status = 409


class InvalidAction(EnvRequestError):
    status = 422


class ServerFull(EnvRequestError):
    """The session table is full; `retry_after` seconds is the service's hint."""

    status = 429


class QuotaExceeded(ServerFull):
    """This client (or its address) holds its quota of open sessions; also a 429 with Retry-After."""


class ExpertUnavailable(EnvRequestError):
    status = 403


_BY_STATUS: dict[int, type[EnvRequestError]] = {404: SessionNotFound, 409: EpisodeFinished, 422: InvalidAction, 429: ServerFull, 403: ExpertUnavailable}


def error_for(status: int, body: Any, retry_after: str | None = None) -> EnvClientError:
    """Map a non-2xx response to a typed error."""
    detail = body.get("detail") if isinstance(body, dict) else body
    if not isinstance(detail, str):
        detail = str(detail)
    if status == 500:
        return EnvServiceError(f"env service error 500: {detail}")
    if status > 500:
        return EnvUnavailable(f"env service error {status}: {detail}", status=status)
    cls = _BY_STATUS.get(status, EnvRequestError)
    return cls(detail, status=status, retry_after=float(retry_after) if retry_after and retry_after.isdigit() else None)
