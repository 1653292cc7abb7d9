"""`ChannelEnvClient`: the v1 session operations over one service's session channel (`WS /v1/channel`).

One aiohttp WebSocket carries every session of the client (wire format: `wire.channel_api`).
Requests made while the event loop is busy elsewhere leave together in one frame (at most
`MAX_FRAME_REQUESTS` requests and `FRAME_BYTES` bytes), and replies come back the same way, so a
collector with hundreds of episodes in flight pays one frame, not one HTTP request, per batch of
steps.

The methods and errors are `AsyncEnvClient`'s: replies carry the v1 statuses and are mapped by
`wire.errors.error_for`, results are validated against the same models, creation is retried on
429, reads and close are retried on a lost connection, and a step never is (it is not
idempotent). A lost connection fails the requests it carried with `EnvUnavailable`; the next call
connects again. A service without the channel refuses the handshake: `ChannelUnsupported`, and
`supported` turns False, so a caller can fall back to v1 (`clients.env_client`). Every request
has the client's `timeout`; a reply frame is read with a byte cap (`max_body_bytes`). The service
announces its limits in its first frame (`ChannelHello`): a request larger than its frame limit
is refused here with the 413 that v1 would answer (`EnvRequestError`, status 413).
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any, TypeVar

import aiohttp
from pydantic import BaseModel
from pydantic_core import from_json, to_json

from clients.env_client import MAX_BODY_BYTES, process_client_id, retried, validated
from envs.types import Split, ToolCall
from wire.channel_api import CHANNEL_PATH, MAX_FRAME_REQUESTS, ChannelHello
from wire.env_api import CLIENT_HEADER, Closed, ExpertAction, SessionCreated, SessionState, StepResponse, ValidActions
from wire.errors import EnvRequestError, EnvUnavailable, error_for

FRAME_BYTES = 512 << 10  # well inside any service's body limit (1 MiB by default)
M = TypeVar("M", bound=BaseModel)


class ChannelUnsupported(EnvUnavailable):
    """The service refused the channel's handshake (an older trajgym, or another server): use v1."""


class _Connection:
    """One open WebSocket: its pending requests, its outbox, and the tasks that move them."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse, timeout: float, hello: ChannelHello) -> None:
        self.ws = ws
        self.timeout = timeout
        self.max_request_bytes = hello.max_frame_bytes - 2  # alone in a frame: "[" + request + "]"
        self.frame_bytes = min(FRAME_BYTES, hello.max_frame_bytes)
        self.frame_requests = min(MAX_FRAME_REQUESTS, hello.max_frame_requests)
        self.closed = False
        self.pending: dict[int, tuple[asyncio.Future[dict[str, Any]], float]] = {}
        self.outbox: list[str] = []
        self.wake = asyncio.Event()
        self.next_id = 0
        self.tasks = [asyncio.create_task(self._read()), asyncio.create_task(self._write()),
                      asyncio.create_task(self._expire())]

    def request(self, fields: dict[str, Any]) -> asyncio.Future[dict[str, Any]]:
        if self.closed:
            raise EnvUnavailable("session channel closed")
        self.next_id += 1
        fields["id"] = self.next_id
        fragment = to_json(fields).decode()
        if len(fragment.encode()) > self.max_request_bytes:  # what v1 would answer with 413
            raise EnvRequestError(f"request body larger than the service's {self.max_request_bytes + 2} bytes", status=413)
        loop = asyncio.get_running_loop()
        future: asyncio.Future[dict[str, Any]] = loop.create_future()
        self.pending[self.next_id] = (future, loop.time() + self.timeout)
        self.outbox.append(fragment)
        self.wake.set()
        return future

    async def _write(self) -> None:
        try:
            while not self.closed:
                if not self.outbox:
                    await self.wake.wait()
                    self.wake.clear()
                    continue
                size, count = 0, 0
                for fragment in self.outbox:
                    if count == self.frame_requests or (count and size + len(fragment) > self.frame_bytes):
                        break
                    size += len(fragment) + 1
                    count += 1
                batch, self.outbox = self.outbox[:count], self.outbox[count:]
                await self.ws.send_str("[" + ",".join(batch) + "]")
        except Exception as err:  # noqa: BLE001 - a failed send ends the connection
            self.fail(f"send failed: {type(err).__name__}: {err}")

    async def _read(self) -> None:
        reason = "closed by the service"
        try:
            async for message in self.ws:
                if message.type is not aiohttp.WSMsgType.TEXT:
                    reason = f"unexpected {message.type.name} frame"
                    break
                replies = from_json(message.data)
                if not isinstance(replies, list):
                    reason = "malformed reply frame"
                    break
                for reply in replies:
                    entry = self.pending.pop(reply.get("id"), None) if isinstance(reply, dict) else None
                    if entry is not None and not entry[0].done():
                        entry[0].set_result(reply)
            if self.ws.exception() is not None:
                reason = f"{type(self.ws.exception()).__name__}: {self.ws.exception()}"
        except Exception as err:  # noqa: BLE001 - an unreadable frame ends the connection
            reason = f"{type(err).__name__}: {err}"
        self.fail(reason)

    async def _expire(self) -> None:
        loop = asyncio.get_running_loop()
        period = max(0.05, min(1.0, self.timeout / 4))
        while not self.closed:
            await asyncio.sleep(period)
            now = loop.time()
            for request_id in [k for k, (_, deadline) in self.pending.items() if deadline < now]:
                future, _ = self.pending.pop(request_id)
                if not future.done():
                    future.set_exception(EnvUnavailable(f"no reply on the session channel within {self.timeout} s"))

    def fail(self, reason: str) -> None:
        """End the connection: every pending request fails with `EnvUnavailable`."""
        if self.closed:
            return
        self.closed = True
        self.wake.set()
        pending, self.pending = self.pending, {}
        for future, _ in pending.values():
            if not future.done():
                future.set_exception(EnvUnavailable(f"session channel lost: {reason}"))
        for task in self.tasks:
            if task is not asyncio.current_task():
                task.cancel()

    async def aclose(self) -> None:
        self.fail("closed by the client")
        with contextlib.suppress(Exception):
            await self.ws.close()


class ChannelEnvClient:
    def __init__(self, base_url: str, *, timeout: float = 60.0, retries: int = 3, client_id: str | None = None,
                 max_body_bytes: int = MAX_BODY_BYTES, session: aiohttp.ClientSession | None = None) -> None:
        base = base_url.rstrip("/")
        self.base_url = base
        self.url = ("ws" + base[4:] if base.startswith("http") else base) + CHANNEL_PATH
        self.timeout = timeout
        self.retries = retries
        self.client_id = client_id or process_client_id()
        self.max_body_bytes = max_body_bytes
        self.supported: bool | None = None  # None until the first handshake
        self._http = session
        self._owns_http = session is None
        self._connection: _Connection | None = None
        self._connecting: asyncio.Lock | None = None

    async def __aenter__(self) -> "ChannelEnvClient":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._connection is not None:
            await self._connection.aclose()
            self._connection = None
        if self._http is not None and self._owns_http and not self._http.closed:
            await self._http.close()

    async def connect(self) -> None:
        """Open the channel now (calls open it on demand); `ChannelUnsupported` if the service has none."""
        await self._open()

    async def _open(self) -> _Connection:
        connection = self._connection
        if connection is not None and not connection.closed:
            return connection
        if self.supported is False:
            raise ChannelUnsupported(f"{self.base_url} has no session channel")
        if self._connecting is None:
            self._connecting = asyncio.Lock()
        async with self._connecting:
            if self._connection is not None and not self._connection.closed:
                return self._connection
            if self._http is None or self._http.closed:
                self._http = aiohttp.ClientSession()
                self._owns_http = True
            try:
                ws = await self._http.ws_connect(self.url, headers={CLIENT_HEADER: self.client_id}, autoping=True,
                                                 max_msg_size=self.max_body_bytes, compress=0,
                                                 timeout=aiohttp.ClientWSTimeout(ws_close=5.0))
            except aiohttp.WSServerHandshakeError as err:
                if err.status in (400, 403, 404, 405, 426):
                    self.supported = False
                    raise ChannelUnsupported(f"{self.base_url} refused the session channel ({err.status})") from err
                raise EnvUnavailable(f"session channel handshake with {self.url} failed: {err.status}", status=err.status) from err
            except (aiohttp.ClientError, OSError, asyncio.TimeoutError) as err:
                raise EnvUnavailable(f"cannot open the session channel {self.url}: {type(err).__name__}: {err}") from err
            try:
                first = await ws.receive(timeout=self.timeout)
                hello = ChannelHello.model_validate_json(first.data if first.type is aiohttp.WSMsgType.TEXT else "")
            except (ValueError, asyncio.TimeoutError, aiohttp.ClientError) as err:
                await ws.close()
                raise EnvUnavailable(f"the session channel {self.url} sent no hello: {type(err).__name__}: {err}") from err
            self.supported = True
            self._connection = _Connection(ws, self.timeout, hello)
            return self._connection

    async def _call(self, model: type[M], what: str, fields: dict[str, Any], *, retry_transport: bool = False,
                    retry_full: bool = False) -> M:
        attempt = 0
        while True:
            attempt += 1
            try:
                reply = await (await self._open()).request(dict(fields))
            except ChannelUnsupported:
                raise
            except EnvUnavailable:
                if not retry_transport or attempt > self.retries:
                    raise
                await asyncio.sleep(0.1 * 2 ** (attempt - 1))
                continue
            status = reply.get("status")
            if isinstance(status, int) and status < 400:
                return validated(model, reply.get("result"), what)
            retry_after = reply.get("retry_after")
            error = error_for(status if isinstance(status, int) else 502, {"detail": reply.get("detail")},
                              str(retry_after) if retry_after is not None else None)
            if await retried(error, attempt, self.retries, retry_full=retry_full, retry_transport=retry_transport):
                continue
            raise error

    # ----- the v1 operations -------------------------------------------------------------------------
    async def create(self, task_id: str | None = None, seed: int | None = None, split: Split | str | None = None) -> SessionCreated:
        fields = {"op": "create", "task_id": task_id, "seed": seed, "split": Split(split).value if split else None}
        return await self._call(SessionCreated, "create", fields, retry_full=True)

    async def step(self, session_id: str, action: str | ToolCall | dict[str, Any]) -> StepResponse:
        payload = action.model_dump() if isinstance(action, ToolCall) else action
        return await self._call(StepResponse, "step", {"op": "step", "session_id": session_id, "action": payload})

    async def state(self, session_id: str) -> SessionState:
        return await self._call(SessionState, "state", {"op": "state", "session_id": session_id}, retry_transport=True)

    async def valid_actions(self, session_id: str) -> list[str] | None:
        reply = await self._call(ValidActions, "actions", {"op": "actions", "session_id": session_id}, retry_transport=True)
        return reply.valid_actions

    async def expert_action(self, session_id: str) -> str:
        reply = await self._call(ExpertAction, "expert", {"op": "expert", "session_id": session_id}, retry_transport=True)
        return reply.action

    async def close(self, session_id: str) -> None:
        await self._call(Closed, "close", {"op": "close", "session_id": session_id}, retry_transport=True)
