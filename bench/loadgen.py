"""The load generator of bench_service.py: one driver, the same for every row, over five transports.

`drive(connect, plan, steps, concurrency)` runs `concurrency` workers in this process's event loop.
Worker w takes its connection from `connect(w)`, then plays the episodes of `plan(w)` (open a session,
send the episode's actions until the server says done, close it) until it has made
`steps // concurrency` step attempts. Only the steps are timed. A failure (exception, non-200 answer,
error frame, wrong echo) is counted in the row's `errors`, never raised; every failed attempt uses one
step of the budget, so a failing server ends its row instead of looping.

Transports, each an async context manager that yields `connect`:

* `http_noop`: `POST /noop` on one aiohttp keep-alive connection per worker; no sessions.
* `ws_noop`:   one WebSocket per worker; a step is one JSON message, echoed.
* `v1`:        trajgym's HTTP API: `POST /v1/sessions`, `POST /v1/sessions/{id}/step`, `DELETE /v1/sessions/{id}`.
* `channel`:   trajgym's session channel: K `ChannelEnvClient`s (K WebSockets) shared by all workers, worker w on client w % K.
* `openenv`:   OpenEnv's `/ws`, one WebSocket (one OpenEnv session) per worker: `reset` opens an episode, then `step`s.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import aiohttp

from bench.common import pct, run_workers

TIMEOUT = 60.0  # seconds one request or message may take before it counts as an error


@dataclass(frozen=True)
class Episode:
    """What a worker plays: a task (or a seed), its actions, and the final reward they must score (None: any)."""

    task_id: str | None
    seed: int | None
    actions: Sequence[str]
    reward: float | None = None


@dataclass
class Row:
    """One row's outcome: every step's latency (s), the timed wall seconds, errors and reward mismatches."""

    latencies: list[float] = field(default_factory=list)
    seconds: float = 0.0
    errors: int = 0
    first_error: str = ""
    episodes: int = 0
    mismatches: int = 0  # finished episodes whose reward differed from the Episode's

    def fail(self, err: BaseException | str) -> None:
        self.errors += 1
        if not self.first_error:
            self.first_error = (err if isinstance(err, str) else f"{type(err).__name__}: {err}")[:200]

    @property
    def steps(self) -> int:
        return len(self.latencies)

    @property
    def rate(self) -> float:
        return self.steps / self.seconds if self.seconds else 0.0

    @property
    def p50(self) -> float:
        return pct(self.latencies, 0.5)

    @property
    def p99(self) -> float:
        return pct(self.latencies, 0.99)


class LoadError(Exception):
    """A server answered, but not with success."""


class Conn(Protocol):
    """One worker's way to a server."""

    async def open(self, episode: Episode) -> str: ...
    async def step(self, session_id: str, action: str) -> tuple[bool, float]: ...  # (done, reward)
    async def close(self, session_id: str) -> None: ...
    async def disconnect(self) -> None: ...


Connect = Callable[[int], Awaitable[Conn]]
Plan = Callable[[int], Iterator[Episode]]


class Gate:
    """Holds each of `n` workers after its first session is open until `release()` (to measure with all open).

    `all_in` is set once all `n` have arrived; the row's timing then starts at the release."""

    def __init__(self, n: int) -> None:
        self.n, self.arrived = n, 0
        self.all_in, self._go = asyncio.Event(), asyncio.Event()
        self.released_at = 0.0

    async def arrive(self) -> None:
        self.arrived += 1
        if self.arrived >= self.n:
            self.all_in.set()
        await self._go.wait()

    def release(self) -> None:
        self.released_at = time.perf_counter()
        self._go.set()


async def drive(connect: Connect, plan: Plan, steps: int, concurrency: int, gate: Gate | None = None) -> Row:
    """Run `concurrency` workers for about `steps` step attempts in all (see the module docstring)."""
    row = Row()
    budget_each = max(1, steps // concurrency)

    async def worker(w: int) -> None:
        try:
            conn = await connect(w)
        except Exception as err:  # noqa: BLE001 (every failure is counted, none ends the run)
            row.fail(err)
            if gate is not None:
                await gate.arrive()
            return
        budget, waited = budget_each, gate is None
        episodes = plan(w)
        try:
            while budget > 0:
                episode = next(episodes)
                session_id: str | None = None
                try:
                    session_id = await conn.open(episode)
                except Exception as err:  # noqa: BLE001
                    row.fail(err)
                    budget -= 1
                if not waited:
                    waited = True
                    await gate.arrive()  # type: ignore[union-attr]
                if session_id is not None:
                    budget -= await _play(conn, session_id, episode, budget, row)
        finally:
            try:
                await conn.disconnect()
            except Exception as err:  # noqa: BLE001
                row.fail(err)

    started = time.perf_counter()
    ended = started + await run_workers(worker, concurrency)
    row.seconds = ended - (gate.released_at if gate is not None and gate.released_at else started)
    return row


async def _play(conn: Conn, session_id: str, episode: Episode, budget: int, row: Row) -> int:
    """Step one open session through `episode` (at most `budget` steps), then close it; the steps attempted."""
    used = 0
    try:
        for action in episode.actions:
            if used == budget:
                break
            used += 1
            t = time.perf_counter()
            done, reward = await conn.step(session_id, action)
            row.latencies.append(time.perf_counter() - t)
            if done:
                row.episodes += 1
                row.mismatches += int(episode.reward is not None and reward != episode.reward)
                break
    except Exception as err:  # noqa: BLE001
        row.fail(err)
    try:
        await conn.close(session_id)
    except Exception as err:  # noqa: BLE001
        row.fail(err)
    return used


# ----- HTTP -----------------------------------------------------------------------------------------
def _http(limit: int) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=limit),
                                 timeout=aiohttp.ClientTimeout(total=TIMEOUT))


async def _request(http: aiohttp.ClientSession, method: str, url: str, body: Any = None) -> Any:
    async with http.request(method, url, json=body) as resp:
        raw = await resp.read()
        if not 200 <= resp.status < 300:
            raise LoadError(f"HTTP {resp.status} {method} {url.rsplit('/', 1)[-1]}: {raw[:200]!r}")
        return json.loads(raw)


class _HttpNoop:
    def __init__(self, http: aiohttp.ClientSession, url: str) -> None:
        self.http, self.url = http, f"{url}/noop"

    async def open(self, episode: Episode) -> str:
        return ""

    async def step(self, session_id: str, action: str) -> tuple[bool, float]:
        await _request(self.http, "POST", self.url, {"action": action})
        return False, 0.0

    async def close(self, session_id: str) -> None:
        return None

    async def disconnect(self) -> None:
        return None


class _V1:
    def __init__(self, http: aiohttp.ClientSession, url: str) -> None:
        self.http, self.url = http, f"{url}/v1/sessions"

    async def open(self, episode: Episode) -> str:
        body = {"task_id": episode.task_id} if episode.task_id is not None else {"seed": episode.seed}
        return str((await _request(self.http, "POST", self.url, body))["session_id"])

    async def step(self, session_id: str, action: str) -> tuple[bool, float]:
        answer = await _request(self.http, "POST", f"{self.url}/{session_id}/step", {"action": action})
        return bool(answer["done"]), float(answer["reward"])

    async def close(self, session_id: str) -> None:
        await _request(self.http, "DELETE", f"{self.url}/{session_id}")

    async def disconnect(self) -> None:
        return None


@contextlib.asynccontextmanager
async def http_noop(url: str, concurrency: int) -> AsyncIterator[Connect]:
    async with _http(concurrency) as http:
        async def connect(w: int) -> Conn:
            return _HttpNoop(http, url)

        yield connect


@contextlib.asynccontextmanager
async def v1(url: str, concurrency: int) -> AsyncIterator[Connect]:
    """`url` may list several services ("u1,u2": `serve --workers`); worker w uses service w % n."""
    urls = url.split(",")
    async with _http(concurrency) as http:
        async def connect(w: int) -> Conn:
            return _V1(http, urls[w % len(urls)])

        yield connect


# ----- WebSockets -----------------------------------------------------------------------------------
class _Ws:
    """One WebSocket: send a JSON message, read the one JSON answer."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws

    async def call(self, message: Any) -> Any:
        await self.ws.send_str(json.dumps(message))
        frame = await self.ws.receive(timeout=TIMEOUT)
        if frame.type != aiohttp.WSMsgType.TEXT:
            raise LoadError(f"websocket {frame.type.name} ({frame.data!r:.100})")
        return json.loads(frame.data)

    async def disconnect(self) -> None:
        await self.ws.close()


class _WsNoop(_Ws):
    async def open(self, episode: Episode) -> str:
        return ""

    async def step(self, session_id: str, action: str) -> tuple[bool, float]:
        message = {"action": action}
        if await self.call(message) != message:
            raise LoadError("the echo differs from the message")
        return False, 0.0

    async def close(self, session_id: str) -> None:
        return None


class _OpenEnv(_Ws):
    async def _observation(self, message: dict[str, Any]) -> dict[str, Any]:
        answer = await self.call(message)
        if answer.get("type") != "observation":
            raise LoadError(f"OpenEnv {answer.get('type')}: {str(answer.get('data'))[:200]}")
        return dict(answer["data"])

    async def open(self, episode: Episode) -> str:
        data = {"task_id": episode.task_id} if episode.task_id is not None else {"seed": episode.seed}
        await self._observation({"type": "reset", "data": data})
        return ""

    async def step(self, session_id: str, action: str) -> tuple[bool, float]:
        data = await self._observation({"type": "step", "data": {"action": action}})
        return bool(data["done"]), float(data["reward"] or 0.0)

    async def close(self, session_id: str) -> None:
        return None  # the next reset on this connection starts the next episode

    async def disconnect(self) -> None:
        with contextlib.suppress(ConnectionError):
            await self.ws.send_str(json.dumps({"type": "close"}))
        await self.ws.close()


def _ws_http(limit: int) -> aiohttp.ClientSession:
    # No total timeout: it would bound a WebSocket's whole life; each message has its own.
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=limit),
                                 timeout=aiohttp.ClientTimeout(total=None, sock_connect=TIMEOUT))


@contextlib.asynccontextmanager
async def _ws_transport(kind: type[_WsNoop] | type[_OpenEnv], url: str, concurrency: int) -> AsyncIterator[Connect]:
    ws_url = url.replace("http://", "ws://", 1) + "/ws"
    async with _ws_http(concurrency) as http:
        async def connect(w: int) -> Conn:
            return kind(await http.ws_connect(ws_url, timeout=aiohttp.ClientWSTimeout(ws_close=TIMEOUT)))

        yield connect


def ws_noop(url: str, concurrency: int) -> contextlib.AbstractAsyncContextManager[Connect]:
    return _ws_transport(_WsNoop, url, concurrency)


def openenv(url: str, concurrency: int) -> contextlib.AbstractAsyncContextManager[Connect]:
    return _ws_transport(_OpenEnv, url, concurrency)


# ----- trajgym's session channel --------------------------------------------------------------------
def channel_missing() -> str | None:
    """Why the channel client cannot be used here (None when `clients.env_channel` imports)."""
    try:
        import clients.env_channel  # noqa: F401
    except ImportError as err:
        return f"no channel client ({err})"
    return None


class _Channel:
    def __init__(self, client: Any) -> None:
        self.client = client

    async def open(self, episode: Episode) -> str:
        created = await self.client.create(task_id=episode.task_id, seed=episode.seed)
        return str(created.session_id)

    async def step(self, session_id: str, action: str) -> tuple[bool, float]:
        answer = await self.client.step(session_id, action)
        return bool(answer.done), float(answer.reward)

    async def close(self, session_id: str) -> None:
        await self.client.close(session_id)

    async def disconnect(self) -> None:
        return None  # the clients are shared; the transport closes them


@contextlib.asynccontextmanager
async def channel(url: str, connections: int = 1) -> AsyncIterator[Connect]:
    """`connections` ChannelEnvClients to each service of `url` ("u1,u2": `serve --workers`), worker w on
    client w % (connections × services)."""
    from clients.env_channel import ChannelEnvClient

    async with contextlib.AsyncExitStack() as stack:
        clients = [await stack.enter_async_context(ChannelEnvClient(u, timeout=TIMEOUT))
                   for _ in range(connections) for u in url.split(",")]

        async def connect(w: int) -> Conn:
            return _Channel(clients[w % len(clients)])

        yield connect
