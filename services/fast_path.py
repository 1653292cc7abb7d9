"""The v1 step route without the framework: `POST /v1/sessions/{id}/step` answered in plain ASGI.

Stepping is the one request an agent run makes thousands of times a second; routing it through
Starlette's router (every route of every surface is matched in turn), FastAPI's dependency and
body machinery and two wrapping middlewares costs more than a cheap env step itself. This
app (`EnvServiceApp`, the FastAPI app every env service is) answers the step route itself, before
any middleware, on the common path:

- a body with a Content-Length within the service's limit, which parses as a `StepRequest`
  (pydantic-core reads the JSON bytes directly);
- the step runs through `EnvService.step`, so the step policy, per-session serialisation and
  metrics are the same as everywhere else;
- errors answer with the same status, `{"detail": ...}` body, Retry-After and error metric as
  the FastAPI handlers (`services.error_status`).

Anything else — another route, a chunked or oversized body, a body that does not validate — is
handed to the full app untouched (the body already read is replayed), so 413s and FastAPI's 422
validation bodies are exactly what they were. The route stays declared in FastAPI for the
OpenAPI schema.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from pydantic import ValidationError
from pydantic_core import to_json
from fastapi import FastAPI
from starlette.types import Message, Receive, Scope, Send

from services.error_status import detail_of, retry_after_of, status_of
from envs.types import StepResult
from wire.env_api import StepRequest
from wire.surfaces import V1_PREFIX

if TYPE_CHECKING:
    from services.app import EnvService

log = logging.getLogger("trajgym.service")

PREFIX = V1_PREFIX + "/sessions/"
SUFFIX = "/step"
JSON_HEADERS = [(b"content-type", b"application/json")]


def step_response_json(turn: int, result: StepResult) -> str:
    """A step's v1 answer (`StepResponse`: the result's fields, `turn`, `progress`), serialised once by
    pydantic-core from the already-validated result (a model round trip costs five times as much)."""
    fields = dict(result.__dict__)
    fields["turn"] = turn
    fields["progress"] = fields["info"].get("progress")
    return to_json(fields).decode()


def error_json(exc: BaseException) -> tuple[int, str, int | None]:
    """(status, JSON body, Retry-After) for an error, as the FastAPI handlers answer it."""
    return status_of(exc), to_json({"detail": detail_of(exc)}).decode(), retry_after_of(exc)


def _session_of(scope: Scope) -> str | None:
    """The session id of a `POST /v1/sessions/{id}/step` request, else None."""
    if scope["type"] != "http" or scope["method"] != "POST":
        return None
    path: str = scope["path"]
    if not path.startswith(PREFIX) or not path.endswith(SUFFIX):
        return None
    session_id = path[len(PREFIX):-len(SUFFIX)]
    return session_id if session_id and "/" not in session_id else None


def _replay(body: bytes, upstream: Receive) -> Receive:
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await upstream()

    return receive


class EnvServiceApp(FastAPI):
    """The FastAPI app of an env service, with the step route's fast path in front of everything.

    Every error of the fast path is answered by it (it runs outside the app's middlewares): a listed
    error with its status, anything else as the crash guard would (500, type and text, logged)."""

    service: EnvService | None = None
    max_step_bytes: int = 1 << 20

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        session_id = _session_of(scope) if self.service is not None else None
        length = -1
        if session_id is not None:
            for name, value in scope["headers"]:
                if name == b"content-length":
                    length = int(value) if value.isdigit() else -1
                    break
        if session_id is None or not 0 <= length <= self.max_step_bytes:
            await super().__call__(scope, receive, send)
            return
        chunks: list[bytes] = []
        more = True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        body = b"".join(chunks)
        try:
            request = StepRequest.model_validate_json(body)
        except ValidationError:  # FastAPI answers it, with its own 422 body
            await super().__call__(scope, _replay(body, receive), send)
            return
        service = self.service
        assert service is not None
        headers = JSON_HEADERS
        try:
            session = service.sessions.get(session_id)
            result = await service.step(session, request.action)
            status, payload = 200, step_response_json(session.env.turns, result)
        except Exception as exc:  # noqa: BLE001 - every error becomes its status, as in the handlers
            status, payload, retry_after = error_json(exc)
            service.metrics.error(status)
            if status == 500:
                log.error("unexpected %s in POST %s", type(exc).__name__, scope["path"], exc_info=exc)
            if retry_after is not None:
                headers = [*JSON_HEADERS, (b"retry-after", str(retry_after).encode())]
        data = payload.encode()
        await send({"type": "http.response.start", "status": status,
                    "headers": [*headers, (b"content-length", str(len(data)).encode())]})
        await send({"type": "http.response.body", "body": data})
