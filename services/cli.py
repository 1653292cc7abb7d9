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
    register: Annotated[str | None, typer.Option("--register", metavar="HUB_URL", envvar="TRAJGYM_HUB_URL",
                                                    help="join this hub at start, leave it at shutdown")] = None,
    public_url: Annotated[str | None, typer.Option("--public-url", help="URL the hub and clients reach this service at "
                                                      "(default: http://HOST:PORT, the hostname if HOST is 0.0.0.0)")] = None,
    hub_token: Annotated[str | None, typer.Option("--hub-token", envvar="TRAJGYM_HUB_TOKEN", show_default=False,
                                                     help="the hub's bearer token (or TRAJGYM_HUB_TOKEN)")] = None,
) -> None:
    """Serve one environment over HTTP (v1 API + AgentGym-compatible surface)."""
    from envs.base import DataDirError, ModeError
    from envs.registry import UnknownEnv
    from services.app import ServiceSettings
    from services.runner import serve_env

    settings = ServiceSettings(max_sessions=max_sessions, session_ttl=session_ttl, expert_enabled=not no_expert)
    if register is not None:
        from services.hub.schemas import normalize_base_url

        for flag, url in (("--register", register), ("--public-url", public_url)):
            try:
                if url is not None:
                    normalize_base_url(url)
            except ValueError as err:
                typer.echo(f"error: {flag}: {err}", err=True)
                raise typer.Exit(2) from err
    try:
        serve_env(env, host=host, port=port, data_dir=data_dir, settings=settings, log_level=log_level,
                  register=register, public_url=public_url, hub_token=hub_token)
    except (UnknownEnv, DataDirError, ModeError) as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(2) from err


@app.command()
def quickstart(
    workdir: Annotated[Path, typer.Option(help="where the store, logs and exports go", envvar="TRAJGYM_WORKDIR")] = Path(".trajgym/quickstart"),
    model: Annotated[Optional[str], typer.Option("--model", help="OpenAI-compatible server URL (default: expert policy)")] = None,
    local_model: Annotated[bool, typer.Option("--local-model", help="set up and start the local vLLM CPU server")] = False,
    limit: Annotated[Optional[int], typer.Option(help="tasks per env (default: all test tasks; 8 with a model)")] = None,
    concurrency: Annotated[int, typer.Option(help="episodes in flight per env")] = 16,
    hub_port: Annotated[int, typer.Option(help="port of the hub and its dashboard", envvar="TRAJGYM_HUB_PORT")] = 8700,
    no_wait: Annotated[bool, typer.Option("--no-wait", help="stop everything once the export is written")] = False,
) -> None:
    """Run the whole pipeline on built-in data: env services + hub, collect, score, export, dashboard."""
    from services.quickstart import QuickstartError
    from services.quickstart import quickstart as run_quickstart

    if model and local_model:
        typer.echo("error: give --model URL or --local-model, not both", err=True)
        raise typer.Exit(2)
    try:
        run_quickstart(workdir, model=model, local_model=local_model, limit=limit, concurrency=concurrency,
                       wait=not no_wait, hub_port=hub_port)
    except QuickstartError as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(1) from err


def _register_subcommands() -> None:
    """Sub-commands of other parts (collector, hub) register themselves on `app`.

    `trajgym serve` skips them: an env service should not pay the collector's imports
    (SQLAlchemy, pyarrow, ...) in start time and memory."""
    import importlib
    import sys

    if len(sys.argv) > 1 and sys.argv[1] == "serve":
        return

    for module in ("collector.cli", "collector.export_cli", "services.hub_cli", "services.model_cli"):
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
