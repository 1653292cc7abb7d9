"""Run a service under uvicorn: `serve_env` (what `trajgym serve` calls, optionally self-registered with a
hub) and `run_server` (the one launcher of every trajgym server: the env services and the hub).

`run_server` binds the port itself first, so a taken port is a `PortInUse` error naming it (not a
uvicorn log line), and it stops gracefully on SIGINT, SIGTERM and SIGHUP alike: uvicorn finishes the
requests in flight, then the app's lifespan ends (an env service leaves its hub there), and the
signal is re-raised so the exit status still says which one ended the process.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import signal
import sys
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from types import FrameType
from typing import Any

import uvicorn
from fastapi import FastAPI

from envs.registry import load_class
from services.app import ServiceSettings, create_app
from services.http_guard import ConnectionLimits, uvicorn_options
from services.ports import bind_port

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
YOUNG_GC_THRESHOLD = 50_000  # objects allocated before a young collection (CPython's default: 700)
SWITCH_INTERVAL = 0.0005  # seconds (CPython's default: 0.005)


class _Server(uvicorn.Server):
    """uvicorn's server with SIGHUP handled like SIGTERM (a closed terminal, `systemctl reload` aside)."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self._stop_signals: list[int] = []

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        self._stop_signals.append(sig)
        super().handle_exit(signal.SIGTERM if sig == signal.SIGHUP else sig, frame)

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():  # tests run servers in threads
            yield
            return
        previous = {sig: signal.signal(sig, self.handle_exit) for sig in STOP_SIGNALS}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        if self._stop_signals:  # end by the signal that stopped us, now that the shutdown is done
            signal.raise_signal(self._stop_signals[0])


def run_server(app: FastAPI, host: str, port: int, **config: Any) -> None:
    """Serve `app` on `host:port` until a stop signal; raises `PortInUse` when the port is taken."""
    sock = bind_port(host, port)
    try:
        server = _Server(uvicorn.Config(app, host=host, port=port, **config))
        server.run(sockets=[sock])
    finally:
        sock.close()


def tune_process(switch_interval: float = SWITCH_INTERVAL) -> None:
    """Interpreter settings of a server process, applied once what lives as long as it is loaded.

    - A short GIL switch interval: a step finished in a worker thread hands its result back to the
      event loop without waiting out the default 5 ms.
    - Everything alive now (imports, the env's data) is frozen out of the cyclic GC (a full collection
      would walk a whole catalogue each time), and the young generation is larger, so that thousands of
      sessions' short-lived request objects are not promoted and re-walked. Measured in bench_service.py
    (BENCHMARKS.md); cyclic garbage is still collected, after at most `YOUNG_GC_THRESHOLD` allocations."""
    sys.setswitchinterval(switch_interval)
    gc.collect()
    gc.freeze()
    gc.set_threshold(YOUNG_GC_THRESHOLD, *gc.get_threshold()[1:])


def serve_env(env: str, host: str = "127.0.0.1", port: int = 8000, data_dir: Path | None = None,
              settings: ServiceSettings | None = None, log_level: str = "warning",
              switch_interval: float = SWITCH_INTERVAL, register: str | None = None, public_url: str | None = None,
              hub_token: str | None = None, modes: dict[str, str] | None = None, heartbeat: float = 10.0,
              limits: ConnectionLimits | None = None) -> None:
    """Serve `env`; with `register=HUB_URL` join that hub once listening, stay joined (every `heartbeat`
    seconds it checks that the hub still lists it, and joins again if not) and leave it at shutdown.

    The env's data is loaded here, before uvicorn starts, so that a bad `--data-dir` or mode
    raises (`DataDirError`, `ModeError`) to the caller instead of failing inside the server; a taken
    port is a `PortInUse` (from `run_server`)."""
    env_cls = load_class(env)
    logging.basicConfig(level=getattr(logging, log_level.upper(), logging.WARNING))
    data = env_cls.load_data(data_dir, modes)
    tune_process(switch_interval)  # after the data is loaded: it is frozen out of the GC
    if data.withheld:
        logging.getLogger("trajgym.serve").warning("%s: tasks withheld from the served splits: %s", env_cls.name, data.withheld)
    registrar = None
    if register:
        from services.hub.registrar import (
            SelfRegistration,
            default_public_url,
            local_url,
        )

        registrar = SelfRegistration(register, public_url or default_public_url(host, port), local_url(host, port), hub_token,
                                     heartbeat=heartbeat)
    app = create_app(env_cls, data=data, settings=settings, on_ready=registrar.start if registrar else None)
    if registrar is not None:
        _leave_on_shutdown(app, registrar.stop)
    # proxy_headers=False: the peer address (the session quota's key) is the TCP peer, never a header.
    # ws_max_size: the session channel's frames are bounded by the body limit (it refuses a bigger one itself).
    max_body = (settings or ServiceSettings()).max_body_bytes
    run_server(app, host, port, log_level=log_level, loop="auto", access_log=False, proxy_headers=False,
               ws_max_size=max(16 << 20, max_body + 4096), **uvicorn_options(limits))


def _leave_on_shutdown(app: FastAPI, leave: Callable[[], Awaitable[None]]) -> None:
    """Run `leave()` when the app's lifespan ends (before the service's own cleanup)."""
    inner = app.router.lifespan_context

    @contextlib.asynccontextmanager
    async def lifespan(a: FastAPI) -> AsyncIterator[Any]:
        async with inner(a) as state:
            try:
                yield state
            finally:
                await leave()

    app.router.lifespan_context = lifespan
