"""ASGI middleware: an unexpected exception in env code answers 500 with its type and text.

An env bug must be named, not mistaken for an unreachable service: the client maps a 500 to
`EnvServiceError` and the collector records an `env_error` with this text. Handled here, not
re-raised (Starlette's default 500 path re-raises, and uvicorn then closes the keep-alive
connection, which a pooled client could reuse and lose its next request on). The traceback
is logged. A response already under way cannot be replaced: then the error is re-raised.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.error_status import detail_of

log = logging.getLogger("trajgym.service")


class CrashGuardMiddleware:
    def __init__(self, app: ASGIApp, on_error: Callable[[], None] | None = None) -> None:
        self.app = app
        self.on_error = on_error

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception as exc:
            if started:
                raise
            log.error("unexpected %s in %s %s", type(exc).__name__, scope.get("method"), scope.get("path"), exc_info=exc)
            if self.on_error is not None:
                self.on_error()
            body = json.dumps({"detail": detail_of(exc)}).encode()
            await send({"type": "http.response.start", "status": 500,
                        "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
            await send({"type": "http.response.body", "body": body})
