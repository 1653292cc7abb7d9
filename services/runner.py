"""Run one env service under uvicorn (what `trajgym serve` calls)."""

from __future__ import annotations

import logging
from pathlib import Path

import uvicorn

from envs.registry import load_class
from services.app import ServiceSettings, create_app


def serve_env(env: str, host: str = "127.0.0.1", port: int = 8000, data_dir: Path | None = None,
              settings: ServiceSettings | None = None, log_level: str = "warning") -> None:
    env_cls = load_class(env)
    if data_dir is not None and not data_dir.is_dir():
        raise FileNotFoundError(f"--data-dir {data_dir} is not a directory")
    logging.basicConfig(level=getattr(logging, log_level.upper(), logging.WARNING))
    app = create_app(env_cls, data_dir=data_dir, settings=settings)
    uvicorn.run(app, host=host, port=port, log_level=log_level, loop="auto", http="auto", access_log=False,
                timeout_keep_alive=30)
