"""Run one env service under uvicorn (what `trajgym serve` calls)."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import uvicorn

from envs.registry import load_class
from services.app import ServiceSettings, create_app


def serve_env(env: str, host: str = "127.0.0.1", port: int = 8000, data_dir: Path | None = None,
              settings: ServiceSettings | None = None, log_level: str = "warning",
              switch_interval: float = 0.0005) -> None:
    env_cls = load_class(env)
    if data_dir is not None and not data_dir.is_dir():
        raise FileNotFoundError(f"--data-dir {data_dir} is not a directory")
    # Env steps run in worker threads; a short GIL switch interval lets a finished step hand
    # its result back to the event loop without waiting out the default 5 ms (bench_service.py).
    sys.setswitchinterval(switch_interval)
    logging.basicConfig(level=getattr(logging, log_level.upper(), logging.WARNING))
    app = create_app(env_cls, data_dir=data_dir, settings=settings)
    uvicorn.run(app, host=host, port=port, log_level=log_level, loop="auto", http="auto", access_log=False, proxy_headers=False,
                timeout_keep_alive=30)
