"""Run one env service under uvicorn (what `trajgym serve` calls), optionally self-registered with a hub."""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import uvicorn
from fastapi import FastAPI

from envs.registry import load_class
from services.app import ServiceSettings, create_app
from services.http_guard import ConnectionLimits, uvicorn_options


def serve_env(env: str, host: str = "127.0.0.1", port: int = 8000, data_dir: Path | None = None,
              settings: ServiceSettings | None = None, log_level: str = "warning",
              switch_interval: float = 0.0005, register: str | None = None, public_url: str | None = None,
              hub_token: str | None = None, modes: dict[str, str] | None = None,
              limits: ConnectionLimits | None = None) -> None:
    """Serve `env`; with `register=HUB_URL` join that hub once listening and leave it at shutdown.

    The env's data is loaded here, before uvicorn starts, so that a bad `--data-dir` or mode
    raises (`DataDirError`, `ModeError`) to the caller instead of failing inside the server."""
    env_cls = load_class(env)
    # Env steps run in worker threads; a short GIL switch interval lets a finished step hand
    # its result back to the event loop without waiting out the default 5 ms (bench_service.py).
    sys.setswitchinterval(switch_interval)
    logging.basicConfig(level=getattr(logging, log_level.upper(), logging.WARNING))
    data = env_cls.load_data(data_dir, modes)
    if data.withheld:
        logging.getLogger("trajgym.serve").warning("%s: tasks withheld from the served splits: %s", env_cls.name, data.withheld)
    registrar = None
    if register:
        from services.hub.registrar import (
            SelfRegistration,
            default_public_url,
            local_url,
        )

        registrar = SelfRegistration(register, public_url or default_public_url(host, port), local_url(host, port), hub_token)
    app = create_app(env_cls, data=data, settings=settings, on_ready=registrar.start if registrar else None)
    if registrar is not None:
        _leave_on_shutdown(app, registrar.stop)
    # proxy_headers=False: the peer address (the session quota's key) is the TCP peer, never a header.
    uvicorn.run(app, host=host, port=port, log_level=log_level, loop="auto", access_log=False, proxy_headers=False,
                **uvicorn_options(limits))


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
