"""ASGI middleware that refuses request bodies over a size limit with 413 and a JSON message."""

from __future__ import annotations

import json

from starlette.types import ASGIApp, Message, Receive, Scope, Send


class BodyTooLarge(Exception):
    pass


def _replay(messages: list[Message], upstream: Receive) -> Receive:
    """A `receive` that first returns the already-read body messages, then defers to the client's."""
    pending = iter(messages)

    async def receive() -> Message:
        message = next(pending, None)
        return message if message is not None else await upstream()

    return receive


class BodyLimitMiddleware:
    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def _reject(self, send: Send) -> None:
        body = json.dumps({"detail": f"request body larger than {self.max_bytes} bytes"}).encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope["headers"]:
            if name == b"content-length":
                if not value.isdigit() or int(value) > self.max_bytes:
                    await self._reject(send)
                    return
                break
        else:
            # No Content-Length (chunked): read the body here, so an oversized one is refused with 413
            # before the app runs (raised inside the app, FastAPI would turn it into a 400 parse error).
            buffered: list[Message] = []
            total = 0
            while True:
                message = await receive()
                if message["type"] != "http.request":
                    return  # the client went away
                total += len(message.get("body", b""))
                if total > self.max_bytes:
                    await self._reject(send)
                    return
                buffered.append(message)
                if not message.get("more_body", False):
                    break
            receive = _replay(buffered, receive)
        seen = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise BodyTooLarge()
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except BodyTooLarge:
            if not started:
                await self._reject(send)
