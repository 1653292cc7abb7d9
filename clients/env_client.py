"""`AsyncEnvClient`: the async client of one env service's v1 API.

Built on aiohttp: on our 2-core machines httpx's default async transport collapses
at 32+ concurrent requests (137 vs 1,550+ req/s, shared/notes/http-client-performance.md;
re-measured in bench/bench_service.py). One pooled `ClientSession` per client.
Errors are typed (`wire.errors`). Retries only where safe: reads and close on
transport errors, session creation on 429 (the server refused it, so nothing was
created). A step is never retried: it is not idempotent. A 500 (`EnvServiceError`,
a bug in env code) is never retried here: the collector decides what to do with it.
A 2xx body that is not what the API promises is an `EnvServiceError` too.
Bodies are read with a byte cap (`max_body_bytes`; `/healthz` probes 64 KiB) within the total
`timeout`, and every request names its client (`X-Trajgym-Client`, `client_id`) so the service's
per-client session quota counts this process's sessions apart from others on the same machine.

With `channel=True` (what the collector uses) the session operations — create, step, expert,
close — go over the service's session channel (`clients.env_channel`, one multiplexed WebSocket)
when the service offers one, and over v1 when it refuses the handshake; the methods, results and
errors are the same either way. Info, tasks, state and health stay on v1.
"""

from __future__ import annotations

import asyncio
import json as jsonlib
import os
import socket
import uuid
from typing import TYPE_CHECKING, Any, TypeVar

import aiohttp
from pydantic import BaseModel, ValidationError

from clients.bounded import read_body
from wire.errors import EnvClientError, EnvServiceError, EnvUnavailable, ServerFull, error_for
from envs.types import EnvInfo, Split, ToolCall
from wire.env_api import CLIENT_HEADER, SessionCreated, SessionState, StepResponse, TaskList


MAX_BODY_BYTES = 64 << 20  # observations and task lists are KB to a few MB; an 800 MiB answer is an attack
HEALTH_MAX_BYTES = 64 << 10


def default_client_id() -> str:
    """`host-pid-random`: one id per process (and per client object after a fork), within the header's charset."""
    host = "".join(c for c in socket.gethostname() if c.isalnum() or c in ".-")[:40] or "host"
    return f"{host}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


_PROCESS_CLIENT_ID: tuple[int, str] | None = None


def process_client_id() -> str:
    """The client id all `AsyncEnvClient`s of this process send unless given another."""
    global _PROCESS_CLIENT_ID
    if _PROCESS_CLIENT_ID is None or _PROCESS_CLIENT_ID[0] != os.getpid():
        _PROCESS_CLIENT_ID = (os.getpid(), default_client_id())
    return _PROCESS_CLIENT_ID[1]

if TYPE_CHECKING:
    from clients.env_channel import ChannelEnvClient

M = TypeVar("M", bound=BaseModel)


def _decode(raw: bytes) -> Any:
    """A response body: its JSON, else its text (an error page), else None when empty."""
    if not raw:
        return None
    try:
        return jsonlib.loads(raw)
    except (ValueError, RecursionError):  # RecursionError: JSON nested too deep to parse
        return raw[:2000].decode("utf-8", "replace")


def validated(model: type[M], body: Any, what: str) -> M:
    """A 2xx body as `model`; a body that does not fit is the service's fault (`EnvServiceError`)."""
    try:
        return model.model_validate(body)
    except ValidationError as err:
        raise EnvServiceError(f"malformed {what} response from the env service: {str(err)[:500]}") from err


async def retried(error: EnvClientError, attempt: int, retries: int, *, retry_full: bool, retry_transport: bool) -> bool:
    """Whether an error answer is retried (after waiting here): a refused creation (429) after its
    Retry-After (at most 5 s), a 5xx other than 500 with backoff, where the call allows it."""
    if attempt > retries:
        return False
    if isinstance(error, ServerFull) and retry_full:
        await asyncio.sleep(min(error.retry_after or 1.0, 5.0))
        return True
    if isinstance(error, EnvUnavailable) and retry_transport:
        await asyncio.sleep(0.1 * 2 ** (attempt - 1))
        return True
    return False


class AsyncEnvClient:
    def __init__(self, base_url: str, *, timeout: float = 60.0, max_connections: int = 512, retries: int = 3,
                 session: aiohttp.ClientSession | None = None, max_body_bytes: int = MAX_BODY_BYTES,
                 client_id: str | None = None, channel: bool = False) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = aiohttp.ClientTimeout(total=timeout)
        self.retries = retries
        self.max_body_bytes = max_body_bytes
        self.client_id = client_id or process_client_id()
        self._max_connections = max_connections
        self._session = session
        self._owns_session = session is None
        self._channel: ChannelEnvClient | None = None
        if channel:
            from clients.env_channel import ChannelEnvClient

            self._channel = ChannelEnvClient(self.base_url, timeout=timeout, retries=retries, client_id=self.client_id,
                                             max_body_bytes=max_body_bytes)

    async def __aenter__(self) -> "AsyncEnvClient":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            # Idle connections are dropped before uvicorn's 5 s keep-alive closes them, so a reused
            # connection is never one the server is closing (a race that loses non-idempotent steps).
            connector = aiohttp.TCPConnector(limit=self._max_connections, limit_per_host=self._max_connections,
                                             keepalive_timeout=4.0)
            self._session = aiohttp.ClientSession(connector=connector, timeout=self.timeout)
            self._owns_session = True
        return self._session

    async def aclose(self) -> None:
        if self._channel is not None:
            await self._channel.aclose()
        if self._session is not None and self._owns_session and not self._session.closed:
            await self._session.close()

    async def request(self, method: str, path: str, json: Any = None, params: dict[str, Any] | None = None,
                      retry_transport: bool = False, retry_full: bool = False, max_bytes: int | None = None) -> Any:
        url = self.base_url + path
        headers = {CLIENT_HEADER: self.client_id}
        attempt = 0
        while True:
            attempt += 1
            try:
                async with self._http().request(method, url, json=json, params=params, headers=headers) as resp:
                    body = _decode(await read_body(resp, max_bytes or self.max_body_bytes))
                    if resp.status < 400:
                        if isinstance(body, str):
                            raise ValueError(f"status {resp.status} with a non-JSON body: {body[:200]!r}")
                        return body
                    error = error_for(resp.status, body, resp.headers.get("Retry-After"))
            except (aiohttp.ClientError, asyncio.TimeoutError, ValueError) as err:
                error = EnvUnavailable(f"{method} {url} failed: {type(err).__name__}: {err}")
                if not retry_transport or attempt > self.retries:
                    raise error from err
                await asyncio.sleep(0.1 * 2 ** (attempt - 1))
                continue
            if await retried(error, attempt, self.retries, retry_full=retry_full, retry_transport=retry_transport):
                continue
            raise error

    async def _via_channel(self) -> ChannelEnvClient | None:
        """The session channel when enabled and offered by the service (connecting on first use), else None."""
        channel = self._channel
        if channel is None or channel.supported is False:
            return None
        if channel.supported is None:
            from clients.env_channel import ChannelUnsupported

            try:
                await channel.connect()
            except ChannelUnsupported:
                return None
        return channel

    @property
    def uses_channel(self) -> bool:
        """Whether session operations go over the session channel (known after the first one)."""
        return self._channel is not None and self._channel.supported is True

    # ----- API ----------------------------------------------------------------------
    async def info(self) -> EnvInfo:
        return validated(EnvInfo, await self.request("GET", "/v1/info", retry_transport=True), "info")

    async def tasks(self, split: Split | str | None = None, offset: int = 0, limit: int = 10_000) -> TaskList:
        params: dict[str, Any] = {"offset": offset, "limit": limit}
        if split is not None:
            params["split"] = Split(split).value
        return validated(TaskList, await self.request("GET", "/v1/tasks", params=params, retry_transport=True), "tasks")

    async def create(self, task_id: str | None = None, seed: int | None = None, split: Split | str | None = None) -> SessionCreated:
        if (channel := await self._via_channel()) is not None:
            return await channel.create(task_id, seed, split)
        body = {"task_id": task_id, "seed": seed, "split": Split(split).value if split else None}
        return validated(SessionCreated, await self.request("POST", "/v1/sessions", json=body, retry_full=True), "create")

    async def step(self, session_id: str, action: str | ToolCall | dict[str, Any]) -> StepResponse:
        if (channel := await self._via_channel()) is not None:
            return await channel.step(session_id, action)
        payload = action.model_dump() if isinstance(action, ToolCall) else action
        return validated(StepResponse, await self.request("POST", f"/v1/sessions/{session_id}/step",
                                                          json={"action": payload}), "step")

    async def state(self, session_id: str) -> SessionState:
        return validated(SessionState, await self.request("GET", f"/v1/sessions/{session_id}", retry_transport=True),
                         "state")

    async def valid_actions(self, session_id: str) -> list[str] | None:
        body = await self.request("GET", f"/v1/sessions/{session_id}/actions", retry_transport=True)
        return body["valid_actions"]

    async def expert_action(self, session_id: str) -> str:
        if (channel := await self._via_channel()) is not None:
            return await channel.expert_action(session_id)
        body = await self.request("GET", f"/v1/sessions/{session_id}/expert", retry_transport=True)
        action = body.get("action") if isinstance(body, dict) else None
        if not isinstance(action, str):
            raise EnvServiceError(f"malformed expert response from the env service: {str(body)[:200]}")
        return action

    async def close(self, session_id: str) -> None:
        if (channel := await self._via_channel()) is not None:
            return await channel.close(session_id)
        await self.request("DELETE", f"/v1/sessions/{session_id}", retry_transport=True)

    async def health(self) -> dict[str, Any]:
        return await self.request("GET", "/healthz", max_bytes=HEALTH_MAX_BYTES)
