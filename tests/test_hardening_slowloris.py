"""Connection deadlines: half-open and idle connections are dropped in the configured time (issue 20).

uvicorn alone holds a connection that sent half a request line for as long as the client likes
(it arms no timer before the headers are complete). With `services.http_guard` a request's line
and headers must arrive within `header_timeout`, its body within `body_timeout`, and an idle
keep-alive connection lasts `keep_alive_timeout`. Measured with raw sockets against both of
uvicorn's HTTP implementations, in-process and through the `trajgym serve` / `trajgym hub` CLIs.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from services.app import ServiceSettings, create_app
from services.http_guard import ConnectionLimits, uvicorn_options
from services.ports import free_port
from tests.support.counter_env import CounterEnv
from tests.support.server import running_server

LIMITS = ConnectionLimits(header_timeout=1.0, body_timeout=1.5, keep_alive_timeout=2.0)
SLACK = 6.0  # a loaded 2-core machine: the deadline fires late, never early by much
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module", params=["httptools", "h11"])
def url(request: pytest.FixtureRequest) -> Iterator[str]:
    app = create_app(CounterEnv, settings=ServiceSettings())
    with running_server(app, **uvicorn_options(LIMITS, http=request.param)) as base:
        yield base


def _connect(url: str) -> socket.socket:
    host, port = url.removeprefix("http://").split(":")
    return socket.create_connection((host, int(port)), timeout=5)


def wait_closed(sock: socket.socket, limit: float) -> tuple[float, bytes]:
    """Seconds until the server closes `sock` (reading whatever it sends); fails if still open after `limit`."""
    started = time.monotonic()
    data = b""
    sock.settimeout(0.2)
    while time.monotonic() - started < limit:
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            continue
        except ConnectionResetError:
            break
        if not chunk:
            break
        data += chunk
    else:
        raise AssertionError(f"connection still open after {limit} s (received {data[:200]!r})")
    return time.monotonic() - started, data


def _get(sock: socket.socket, path: str = "/healthz") -> bytes:
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    sock.settimeout(10)
    data = b""
    while b"\r\n\r\n" not in data or not data.rstrip().endswith(b"}"):
        data += sock.recv(65536)
    return data


def test_half_a_request_line_is_closed_after_the_header_timeout(url: str) -> None:
    with _connect(url) as sock:
        sock.sendall(b"GET /healthz HT")
        elapsed, data = wait_closed(sock, LIMITS.header_timeout + SLACK)
    assert elapsed >= LIMITS.header_timeout * 0.5
    assert data.startswith(b"HTTP/1.1 408") and b"headers not received in time" in data


def test_a_silent_connection_is_closed_after_the_header_timeout(url: str) -> None:
    with _connect(url) as sock:
        elapsed, data = wait_closed(sock, LIMITS.header_timeout + SLACK)
    assert elapsed >= LIMITS.header_timeout * 0.5 and data == b""


def test_headers_dripped_a_byte_at_a_time_are_cut_at_the_deadline(url: str) -> None:
    request = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"a" * 1000
    with _connect(url) as sock:
        started = time.monotonic()
        sent = 0
        with contextlib.suppress(OSError):
            for byte in request:  # a byte every 0.1 s: each read is "recent", only a total deadline stops it
                sock.sendall(bytes([byte]))
                sent += 1
                time.sleep(0.1)
                if time.monotonic() - started > LIMITS.header_timeout + SLACK:
                    break
        remaining, _ = wait_closed(sock, SLACK)
        elapsed = time.monotonic() - started
    assert elapsed < LIMITS.header_timeout + 2 * SLACK and sent < len(request)


def test_a_body_that_never_ends_is_closed_after_the_body_timeout(url: str) -> None:
    with _connect(url) as sock:
        sock.sendall(b"POST /v1/sessions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{")
        elapsed, data = wait_closed(sock, LIMITS.body_timeout + SLACK)
    assert elapsed >= LIMITS.body_timeout * 0.5
    assert data.startswith(b"HTTP/1.1 408") and b"body not received in time" in data


def test_keep_alive_then_idle_then_half_a_request(url: str) -> None:
    with _connect(url) as sock:
        assert _get(sock).startswith(b"HTTP/1.1 200")
        assert _get(sock).startswith(b"HTTP/1.1 200")  # the connection is reused
        elapsed, data = wait_closed(sock, LIMITS.keep_alive_timeout + SLACK)  # idle: uvicorn's keep-alive
        assert elapsed >= LIMITS.keep_alive_timeout * 0.5 and data == b""
    with _connect(url) as sock:
        assert _get(sock).startswith(b"HTTP/1.1 200")
        time.sleep(0.3)
        sock.sendall(b"GET /heal")  # a second request that never completes: the header deadline, not keep-alive
        elapsed, data = wait_closed(sock, LIMITS.header_timeout + SLACK)
        assert data.startswith(b"HTTP/1.1 408")


def test_a_slow_but_steady_request_inside_the_deadlines_is_served(url: str) -> None:
    body = b'{"task_id": "counter-1"}'
    head = b"POST /v1/sessions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body)
    with _connect(url) as sock:
        for part in (head[:20], head[20:], body[:5], body[5:]):
            sock.sendall(part)
            time.sleep(0.1)
        sock.settimeout(10)
        assert sock.recv(65536).startswith(b"HTTP/1.1 201")


def test_two_hundred_half_open_connections_do_not_stall_a_victim(url: str) -> None:
    attackers = []
    try:
        for _ in range(200):
            sock = _connect(url)
            sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")  # headers never finished
            attackers.append(sock)
        with httpx.Client(base_url=url, timeout=30) as victim:
            started = time.monotonic()
            created = victim.post("/v1/sessions", json={"task_id": "counter-3"})
            assert created.status_code == 201 and created.json()["task_id"] == "counter-3"
            assert time.monotonic() - started < 10
        time.sleep(LIMITS.header_timeout)
        for sock in attackers:  # every attacker was dropped by the deadline
            wait_closed(sock, SLACK)
    finally:
        for sock in attackers:
            sock.close()


@contextlib.contextmanager
def _cli(args: list[str], ready_path: str) -> Iterator[str]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "cli.main", *args, "--port", str(port)], cwd=ROOT,
                            env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None and time.monotonic() < deadline, "server did not start"
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(url + ready_path, timeout=2).status_code == 200:
                    break
            time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        proc.wait(15)


def test_trajgym_serve_applies_the_flags(tmp_path: Path) -> None:
    with _cli(["serve", "tests.support.counter_env:CounterEnv", "--header-timeout", "1", "--max-sessions-per-client", "2"],
              "/readyz") as url:
        with _connect(url) as sock:
            sock.sendall(b"GET /v1/info HTTP/1.1\r\nHo")
            elapsed, data = wait_closed(sock, 1 + SLACK)
            assert data.startswith(b"HTTP/1.1 408")
        with httpx.Client(base_url=url) as http:
            assert [http.post("/v1/sessions", json={}).status_code for _ in range(3)] == [201, 201, 429]


def test_trajgym_hub_applies_the_flags(tmp_path: Path) -> None:
    with _cli(["hub", "--token", "t", "--store", f"sqlite:///{tmp_path / 'hub.db'}", "--header-timeout", "1",
               "--keep-alive-timeout", "1"], "/healthz") as url:
        with _connect(url) as sock:
            sock.sendall(b"GET /dashboard HTTP/1.1\r\n")
            elapsed, data = wait_closed(sock, 1 + SLACK)
            assert data.startswith(b"HTTP/1.1 408")


def test_an_openenv_websocket_outlives_the_request_deadlines() -> None:
    """The header deadline is a request's: a connection upgraded to a WebSocket (OpenEnv's /ws) must not be
    dropped when it runs out."""
    import asyncio
    import json as jsonlib

    import aiohttp

    from services.app import create_app
    from services.http_guard import ConnectionLimits, uvicorn_options
    from tests.support.counter_env import CounterEnv
    from tests.support.server import running_server

    async def hold(url: str) -> str:
        async with aiohttp.ClientSession() as http, http.ws_connect(url.replace("http", "ws") + "/openenv/ws") as ws:
            await asyncio.sleep(1.0)  # past both deadlines below
            await ws.send_str(jsonlib.dumps({"type": "reset", "data": {"task_id": "counter-1"}}))
            return jsonlib.loads((await asyncio.wait_for(ws.receive(), 5)).data)["type"]

    with running_server(create_app(CounterEnv), **uvicorn_options(ConnectionLimits(header_timeout=0.3, body_timeout=0.3))) as url:
        assert asyncio.run(hold(url)) == "observation"
