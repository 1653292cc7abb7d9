"""The `trajgym` command line (typer). Each sub-command lives with the part it drives."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

app = typer.Typer(no_args_is_help=True, add_completion=False, help="trajgym: agent environments as services, and a trajectory collector.")


@app.callback()
def _root() -> None:
    """trajgym: agent environments as services, and a trajectory collector."""


@app.command()
def serve(
    env: Annotated[str, typer.Argument(help="env name (webshop, household, sql, qa) or module:Class")],
    data_dir: Annotated[Optional[Path], typer.Option("--data-dir", help="folder with the env's published data files")] = None,
    host: Annotated[str, typer.Option(help="interface to bind")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port")] = 8000,
    max_sessions: Annotated[int, typer.Option(help="open sessions before 429")] = 4096,
    session_ttl: Annotated[float, typer.Option(help="seconds an idle session lives")] = 900.0,
    no_expert: Annotated[bool, typer.Option("--no-expert", help="disable the expert route (403)")] = False,
    log_level: Annotated[str, typer.Option(help="uvicorn log level")] = "warning",
) -> None:
    """Serve one environment over HTTP (v1 API + AgentGym-compatible surface)."""
    from envs.registry import UnknownEnv
    from services.app import ServiceSettings
    from services.runner import serve_env

    settings = ServiceSettings(max_sessions=max_sessions, session_ttl=session_ttl, expert_enabled=not no_expert)
    try:
        serve_env(env, host=host, port=port, data_dir=data_dir, settings=settings, log_level=log_level)
    except (UnknownEnv, FileNotFoundError) as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(2) from err


def _register_subcommands() -> None:
    """Sub-commands of other parts (collector, hub) register themselves on `app`."""
    import importlib

    for module in ("collector.cli", "services.hub_cli"):
        try:
            mod = importlib.import_module(module)
        except ModuleNotFoundError as err:
            if err.name != module:
                raise
            continue
        mod.register(app)


_register_subcommands()


def main() -> None:
    app()


if __name__ == "__main__":
    main()
