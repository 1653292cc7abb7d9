"""Start a real uvicorn server for a FastAPI app on a free loopback port (in a thread)."""

from __future__ import annotations

import contextlib
import subprocess
import threading
import time
from collections.abc import Iterator
from typing import Any

import uvicorn
from fastapi import FastAPI

from services.ports import free_port


@contextlib.contextmanager
def running_server(app: FastAPI, port: int | None = None, **options: Any) -> Iterator[str]:
    """`options` go to `uvicorn.Config` (e.g. `services.http_guard.uvicorn_options(...)`)."""
    port = port or free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on", **options)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def start_counter_process(port: int, ready_timeout: float = 30.0) -> "subprocess.Popen[bytes]":
    """`trajgym serve` the counter test env as a real process on `port`; returns once it is ready."""
    import sys
    import urllib.request
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    proc = subprocess.Popen([sys.executable, "-m", "cli.main", "serve", "tests.support.counter_env:CounterEnv",
                             "--port", str(port)], cwd=root, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + ready_timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1) as resp:
                if resp.status == 200:
                    return proc
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError("env service did not start")
