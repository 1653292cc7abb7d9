"""Connection deadlines for uvicorn: a request's line and headers, then its body, must arrive in time.

uvicorn (0.34, both the httptools and the h11 protocol) arms no timer while a request is
incomplete: a connection that sends half a request line, or headers a byte a minute, or a
body that never ends, is held until the client goes away (slowloris). `guarded_protocol()`
subclasses uvicorn's protocol with two deadlines:

- headers: from the connection's opening, or the first byte of a next request on a
  keep-alive connection, to the end of the request's headers: `header_timeout` seconds;
- body: from the end of the headers to the end of the body: `body_timeout` seconds.

Past a deadline the connection is answered 408 (if the app has not started a response) and
closed. Idle keep-alive connections are uvicorn's own `timeout_keep_alive`.
`uvicorn_options(limits)` gives the keyword arguments for `uvicorn.run`/`uvicorn.Config`.
"""

from __future__ import annotations

import asyncio
import importlib.util
from typing import Any

from pydantic import BaseModel, Field

REQUEST_TIMEOUT = (b"HTTP/1.1 408 Request Timeout\r\ncontent-type: text/plain; charset=utf-8\r\n"
                   b"connection: close\r\ncontent-length: %d\r\n\r\n%s")


class ConnectionLimits(BaseModel):
    """Deadlines of one server's connections (`--header-timeout`, `--body-timeout`, `--keep-alive-timeout`)."""

    header_timeout: float = Field(default=10.0, gt=0, le=3600, description="seconds a request's line and headers may take")
    body_timeout: float = Field(default=30.0, gt=0, le=3600, description="seconds a request body may take after its headers")
    keep_alive_timeout: float = Field(default=30.0, gt=0, le=3600, description="seconds an idle keep-alive connection is kept")


class _RequestDeadlines:
    """Mixin over uvicorn's `HttpToolsProtocol` / `H11Protocol` (uses their `loop`, `transport`, `cycle`)."""

    header_timeout: float = 10.0
    body_timeout: float = 30.0
    loop: asyncio.AbstractEventLoop
    transport: asyncio.Transport
    cycle: Any

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)  # type: ignore[misc]
        self._header_timer: asyncio.TimerHandle | None = None
        self._body_timer: asyncio.TimerHandle | None = None
        self._partial = False
        self._arm_header()

    def _between_requests(self) -> bool:
        return self.cycle is None or self.cycle.response_complete

    def _arm_header(self) -> None:
        self._header_timer = self.loop.call_later(self.header_timeout, self._header_expired, self.cycle)
        self._partial = False

    def data_received(self, data: bytes) -> None:
        if self._header_timer is None and self._between_requests():
            self._arm_header()  # the first byte of a next request on a keep-alive connection
        self._partial = True
        before = self.cycle
        super().data_received(data)  # type: ignore[misc]
        if self.transport.get_protocol() is not self:  # upgraded to a WebSocket: its connection is not a request's
            for timer in (self._header_timer, self._body_timer):
                if timer is not None:
                    timer.cancel()
            self._header_timer = self._body_timer = None
            return
        cycle = self.cycle
        if cycle is not before:  # a request's headers are complete
            if self._header_timer is not None:
                self._header_timer.cancel()
                self._header_timer = None
            if cycle.more_body and not cycle.response_complete:
                if self._body_timer is not None:
                    self._body_timer.cancel()
                self._body_timer = self.loop.call_later(self.body_timeout, self._body_expired, cycle)

    def connection_lost(self, exc: Exception | None) -> None:
        for timer in (self._header_timer, self._body_timer):
            if timer is not None:
                timer.cancel()
        super().connection_lost(exc)  # type: ignore[misc]

    def _header_expired(self, cycle: Any) -> None:
        self._header_timer = None
        if self.cycle is cycle and not self.transport.is_closing():  # no request's headers completed meanwhile
            self._drop("request headers not received in time" if self._partial else None)

    def _body_expired(self, cycle: Any) -> None:
        self._body_timer = None
        if self.cycle is cycle and cycle.more_body and not cycle.response_complete and not self.transport.is_closing():
            self._drop(None if cycle.response_started else "request body not received in time")

    def _drop(self, message: str | None) -> None:
        if message is not None:
            text = message.encode()
            self.transport.write(REQUEST_TIMEOUT % (len(text), text))
        self.transport.close()


def _base_protocol(http: str) -> type[asyncio.Protocol]:
    if http == "httptools" or (http == "auto" and importlib.util.find_spec("httptools") is not None):
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

        return HttpToolsProtocol
    from uvicorn.protocols.http.h11_impl import H11Protocol

    return H11Protocol


def guarded_protocol(header_timeout: float, body_timeout: float, http: str = "auto") -> type[asyncio.Protocol]:
    """uvicorn's `http` protocol class (`auto`: httptools if installed, else h11) with the two deadlines."""
    base = _base_protocol(http)
    return type(f"Guarded{base.__name__}", (_RequestDeadlines, base),
                {"header_timeout": header_timeout, "body_timeout": body_timeout})


def uvicorn_options(limits: ConnectionLimits | None = None, http: str = "auto") -> dict[str, Any]:
    """`http=` and `timeout_keep_alive=` for `uvicorn.run` / `uvicorn.Config`."""
    limits = limits or ConnectionLimits()
    return {"http": guarded_protocol(limits.header_timeout, limits.body_timeout, http),
            "timeout_keep_alive": limits.keep_alive_timeout}
