"""The session channel, `WS /v1/channel`: v1 session operations multiplexed over one WebSocket.

Wire format: `wire.channel_api`. Each operation goes through the same `EnvService` methods as its
v1 route (step policy, per-session serialisation, quotas, metrics, error statuses), so the two
surfaces cannot drift. What the channel saves is everything around them:

- a step the policy places inline, on a session with no step running, is answered synchronously
  while the frame is read; everything else (a step in a worker thread, a reset, the expert) runs
  as its own task, so a slow session never holds up the others on the same connection;
- replies are coalesced: whatever completes while a frame is being handled leaves in one frame
  (of at most about `REPLY_FRAME_BYTES`; more replies make more frames).

Limits, per connection (announced in the first frame, `ChannelHello`): a frame is at most the service's body limit and `MAX_FRAME_REQUESTS`
requests; at most `in_flight_limit` requests are accepted and unanswered at once (past that the
channel stops reading, and TCP pushes back on the client); a channel idle for `idle_timeout`
seconds with nothing in flight is closed (code 1000; the client reconnects on its next call).
Sessions outlive their channel, exactly as v1 sessions outlive a TCP connection: a client that
goes away leaves them to the idle TTL, and steps still running finish (their replies are dropped).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any

from fastapi import WebSocket
from pydantic import BaseModel, TypeAdapter, ValidationError
from pydantic_core import from_json, to_json
from starlette.websockets import WebSocketDisconnect

from services.client_key import key_of
from services.error_status import detail_of, retry_after_of, status_of
from services.fast_path import step_response_json
from wire.channel_api import MAX_FRAME_REQUESTS, ChannelHello, ChannelRequest
from wire.env_api import Closed, CreateSession

if TYPE_CHECKING:
    from services.app import EnvService
    from services.sessions import ClientKey, Session

log = logging.getLogger("trajgym.channel")

FRAME = TypeAdapter(list[ChannelRequest])
REQUEST: TypeAdapter[ChannelRequest] = TypeAdapter(ChannelRequest)
REPLY_FRAME_BYTES = 1 << 20  # replies are sent in frames of about this size at most (a client reads them with a cap)


def _ok(request_id: int, body: str, status: int = 200) -> str:
    return f'{{"id":{request_id},"status":{status},"result":{body}}}'


def _error(request_id: int | None, status: int, detail: str, retry_after: int | None = None) -> str:
    reply: dict[str, Any] = {"id": request_id, "status": status, "detail": detail}
    if retry_after is not None:
        reply["retry_after"] = retry_after
    return to_json(reply).decode()


class ChannelConnection:
    """One accepted channel: reads frames, dispatches requests, writes coalesced replies."""

    def __init__(self, service: EnvService, websocket: WebSocket, client: ClientKey, *, max_bytes: int,
                 in_flight_limit: int, idle_timeout: float) -> None:
        self.service = service
        self.websocket = websocket
        self.client = client
        self.max_bytes = max_bytes
        self.in_flight_limit = in_flight_limit
        self.idle_timeout = idle_timeout
        self.in_flight = 0
        self.closed = False
        self.last_activity = time.monotonic()
        self._outbox: list[str] = []
        self._wake = asyncio.Event()
        self._sending = False
        self._in_frame = False
        self._room = asyncio.Event()
        self._room.set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._busy: dict[str, int] = {}  # session id → this channel's requests on it still running as tasks

    # ----- replies -------------------------------------------------------------------------------
    def _reply(self, fragment: str) -> None:
        if self.closed:
            return
        self._outbox.append(fragment)
        if not self._in_frame:  # a task's reply: the writer sends it (the reader sends its own frame's)
            self._wake.set()

    def _reply_error(self, request_id: int | None, exc: BaseException) -> None:
        status = status_of(exc)
        self.service.metrics.error(status)
        if status == 500:
            log.error("unexpected %s in a channel request", type(exc).__name__, exc_info=exc)
        self._reply(_error(request_id, status, detail_of(exc), retry_after_of(exc)))

    async def _writer(self) -> None:
        """Sends the replies of requests that ran as tasks (the reader sends those of its own frame)."""
        while not self.closed:  # once closed, replies still queued are dropped (nobody reads them)
            if not self._outbox or self._sending:
                await self._wake.wait()
                self._wake.clear()
                continue
            await self._flush()

    async def _flush(self) -> None:
        """Send what the outbox holds, in frames of about `REPLY_FRAME_BYTES` (one sender at a time)."""
        self._sending = True
        try:
            while self._outbox and not self.closed:
                count, size = 0, 0
                for fragment in self._outbox:  # a reply frame stays under REPLY_FRAME_BYTES (but holds at least one reply)
                    if count and size + len(fragment) > REPLY_FRAME_BYTES:
                        break
                    size += len(fragment) + 1
                    count += 1
                batch, self._outbox = self._outbox[:count], self._outbox[count:]
                try:
                    await self.websocket.send_text("[" + ",".join(batch) + "]")
                except Exception:  # the client went away mid-send
                    self.closed = True
                    self._room.set()  # a reader waiting for room must see the end too
                    return
                self.in_flight -= len(batch)
                self.last_activity = time.monotonic()
                if self.in_flight < self.in_flight_limit:
                    self._room.set()
        finally:
            self._sending = False
            if self._outbox:
                self._wake.set()

    # ----- requests ------------------------------------------------------------------------------
    def _parse(self, text: str) -> list[ChannelRequest]:
        """The frame's valid requests; each invalid one (and an unreadable frame) is answered with its error."""
        try:
            return FRAME.validate_json(text)
        except ValidationError:
            pass
        try:
            items = from_json(text)
        except ValueError as err:
            self._reply(_error(None, 400, f"frame is not JSON: {err}"))
            return []
        if not isinstance(items, list):
            self._reply(_error(None, 400, "a frame is a JSON array of requests"))
            return []
        requests: list[ChannelRequest] = []
        for item in items:
            try:
                requests.append(REQUEST.validate_python(item))
            except ValidationError as err:
                raw_id = item.get("id") if isinstance(item, dict) else None
                request_id = raw_id if isinstance(raw_id, int) and not isinstance(raw_id, bool) else None
                self.service.metrics.error(422)
                self._reply(_error(request_id, 422, str(err)[:2000]))
        return requests

    def _dispatch(self, request: ChannelRequest) -> None:
        """Answer now what can be answered synchronously; run the rest as a task. A session with a
        request of this channel still running has every later one run as a task too, after it (tasks
        start in order and queue on the session's lock), so a session's operations keep their order."""
        service = self.service
        session_id = request.session_id
        if session_id is None or session_id not in self._busy:
            try:
                if request.op == "step":
                    session = service.sessions.get(session_id)  # type: ignore[arg-type]
                    if service.inline_step_ready(session):
                        result = service.step_inline(session, request.action)
                        self._reply(_ok(request.id, step_response_json(session.env.turns, result)))
                        return
                elif request.op in ("state", "actions"):
                    self._reply(_ok(request.id, self._read(request, service.sessions.get(session_id))))  # type: ignore[arg-type]
                    return
                elif request.op == "close" and service.close_now(session_id):  # type: ignore[arg-type]
                    self._reply(_ok(request.id, Closed(session_id=session_id).model_dump_json()))  # type: ignore[arg-type]
                    return
            except Exception as exc:  # noqa: BLE001 - every error is a reply with its status
                self._reply_error(request.id, exc)
                return
        if session_id is not None:
            self._busy[session_id] = self._busy.get(session_id, 0) + 1
        task = asyncio.create_task(self._run(request))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _read(self, request: ChannelRequest, session: Session) -> str:
        """The answer of a read (state, actions) as JSON."""
        body = self.service.state(session) if request.op == "state" else self.service.valid_actions(session)
        return body.model_dump_json()

    async def _run(self, request: ChannelRequest) -> None:
        service = self.service
        try:
            status = 200
            body: BaseModel
            if request.op == "create":
                create = CreateSession(task_id=request.task_id, seed=request.seed, split=request.split)
                body, status = await service.create(create, self.client), 201
            elif request.op == "step":
                session = service.sessions.get(request.session_id)  # type: ignore[arg-type]
                result = await service.step(session, request.action)
                self._reply(_ok(request.id, step_response_json(session.env.turns, result)))
                return
            elif request.op in ("state", "actions"):
                session = service.sessions.get(request.session_id)  # type: ignore[arg-type]
                async with service.holding(session):  # after this channel's earlier operations on the session
                    self._reply(_ok(request.id, self._read(request, session)))
                return
            elif request.op == "expert":
                body = await service.expert(request.session_id)  # type: ignore[arg-type]
            else:  # close
                await service.close_session(request.session_id)  # type: ignore[arg-type]
                body = Closed(session_id=request.session_id)  # type: ignore[arg-type]
            self._reply(_ok(request.id, body.model_dump_json(), status))
        except Exception as exc:  # noqa: BLE001
            self._reply_error(request.id, exc)
        finally:
            self._settled(request.session_id)

    def _settled(self, session_id: str | None) -> None:
        if session_id is None:
            return
        left = self._busy.pop(session_id, 1) - 1
        if left > 0:
            self._busy[session_id] = left

    # ----- the connection --------------------------------------------------------------------------
    def _check_idle(self) -> None:
        if self.closed:
            return
        loop = asyncio.get_running_loop()
        if self.in_flight == 0 and time.monotonic() - self.last_activity > self.idle_timeout:
            self.closed = True
            task = loop.create_task(self.websocket.close(code=1000, reason="idle"))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            return
        self._idle_timer = loop.call_later(max(self.idle_timeout / 4, 0.05), self._check_idle)

    async def run(self) -> None:
        hello = ChannelHello(max_frame_bytes=self.max_bytes, in_flight_limit=self.in_flight_limit, idle_timeout=self.idle_timeout)
        try:
            await self.websocket.send_text(hello.model_dump_json())
        except Exception:  # gone before the hello
            return
        writer = asyncio.create_task(self._writer())
        self._idle_timer = asyncio.get_running_loop().call_later(max(self.idle_timeout / 4, 0.05), self._check_idle)
        try:
            while not self.closed:
                if self.in_flight >= self.in_flight_limit:
                    self._room.clear()
                    await self._room.wait()
                    continue
                message = await self.websocket.receive()
                if message["type"] == "websocket.disconnect":
                    break
                self.last_activity = time.monotonic()
                text = message.get("text")
                if text is None:
                    data = message.get("bytes") or b""
                    try:
                        text = data.decode()
                    except UnicodeDecodeError:
                        self.in_flight += 1
                        self._reply(_error(None, 400, "a binary frame must hold UTF-8 JSON"))
                        continue
                self._in_frame = True
                try:
                    self._frame(text)
                finally:
                    self._in_frame = False
                if self._outbox and not self._sending:  # this frame's own replies, without waking the writer
                    await self._flush()
        except (WebSocketDisconnect, RuntimeError):  # RuntimeError: receive after the close
            pass
        finally:
            self.closed = True
            self._idle_timer.cancel()
            self._wake.set()
            await writer

    def _frame(self, text: str) -> None:
        if len(text) > self.max_bytes:
            self.in_flight += 1
            self._reply(_error(None, 413, f"frame larger than {self.max_bytes} bytes"))
            return
        before = len(self._outbox)
        requests = self._parse(text)
        if len(requests) > MAX_FRAME_REQUESTS:
            for request in requests:
                self._reply(_error(request.id, 413, f"a frame holds at most {MAX_FRAME_REQUESTS} requests"))
            requests = []
        self.in_flight += len(requests) + (len(self._outbox) - before)
        self.service.metrics.channel_requests.inc(len(requests))
        for request in requests:
            self._dispatch(request)


async def serve_channel(service: EnvService, websocket: WebSocket) -> None:
    """Accept one channel connection and run it until the client leaves (or it idles out)."""
    client = key_of(websocket.client.host if websocket.client else None, websocket.headers)
    await websocket.accept()
    settings = service.settings
    connection = ChannelConnection(service, websocket, client, max_bytes=settings.max_body_bytes,
                                   in_flight_limit=settings.channel_in_flight, idle_timeout=settings.channel_idle_timeout)
    service.metrics.channels_open.inc()
    try:
        await connection.run()
    finally:
        service.metrics.channels_open.dec()
