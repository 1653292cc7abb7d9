"""`trajgym serve ENV`: one env as an HTTP service (v1 API, AgentGym routes, /metrics); with `--workers N`,
N such services on ports PORT..PORT+N-1 under one supervisor (`services/workers.py`)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from cli import errors
from cli.errors import fail

# Options a worker does not inherit as given: each gets its own port and public URL, the token travels in
# its environment (not on a command line others can read), and each worker is a single one.
_PER_WORKER = frozenset({"workers", "port", "public_url", "hub_token"})


def _parse_modes(pairs: list[str], grading: str | None, observation: str | None) -> dict[str, str]:
    modes: dict[str, str] = {}
    for pair in pairs:
        axis, sep, value = pair.partition("=")
        if not sep or not axis.strip() or not value.strip():
            fail(f"--mode takes AXIS=VALUE, got {pair!r}")
        modes[axis.strip()] = value.strip()
    for axis, value in (("grading", grading), ("observation", observation)):
        if value is not None:
            modes[axis] = value
    return modes


def serve(
    ctx: typer.Context,
    env: Annotated[str, typer.Argument(help="env name (webshop, household, sql, qa) or module:Class")],
    data_dir: Annotated[Optional[Path], typer.Option("--data-dir", help="folder with the env's published data files")] = None,
    host: Annotated[str, typer.Option(help="interface to bind")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port (with --workers N: worker i listens on PORT+i)")] = 8000,
    workers: Annotated[int, typer.Option("--workers", min=1, max=64,
        help="worker processes, each a full service with its own sessions on its own port PORT+i (with --register "
             "each joins the hub as a replica; --public-url U gives worker i U's port + i)")] = 1,
    max_sessions: Annotated[int, typer.Option(min=1, max=2**31 - 1, help="open sessions before 429")] = 4096,
    max_sessions_per_client: Annotated[Optional[int], typer.Option(min=1, show_default=False,
        help="sessions one client (peer address + X-Trajgym-Client id) may hold before 429 (default: a quarter of --max-sessions, at least 64)")] = None,
    max_sessions_per_address: Annotated[Optional[int], typer.Option(min=1, show_default=False,
        help="sessions one peer address may hold whatever client ids it sends (default: half of --max-sessions, at least 128)")] = None,
    session_ttl: Annotated[float, typer.Option(help="seconds an idle session lives")] = 900.0,
    no_expert: Annotated[bool, typer.Option("--no-expert", help="disable the expert route (403)")] = False,
    log_level: Annotated[str, typer.Option(help="uvicorn log level")] = "warning",
    header_timeout: Annotated[float, typer.Option(min=0.01, max=3600, help="seconds a request line and headers may take (then 408, closed)")] = 10.0,
    body_timeout: Annotated[float, typer.Option(min=0.01, max=3600, help="seconds a request body may take after the headers")] = 30.0,
    keep_alive_timeout: Annotated[float, typer.Option(min=0.01, max=3600, help="seconds an idle keep-alive connection is kept")] = 30.0,
    register: Annotated[str | None, typer.Option("--register", metavar="HUB_URL", envvar="TRAJGYM_HUB_URL",
                                                    help="join this hub at start, leave it at shutdown")] = None,
    public_url: Annotated[str | None, typer.Option("--public-url", help="URL the hub and clients reach this service at "
                                                      "(default: http://HOST:PORT, the hostname if HOST is 0.0.0.0)")] = None,
    hub_token: Annotated[str | None, typer.Option("--hub-token", envvar="TRAJGYM_HUB_TOKEN", show_default=False,
                                                     help="the hub's bearer token (or TRAJGYM_HUB_TOKEN)")] = None,
    heartbeat: Annotated[float, typer.Option("--heartbeat", min=0.05, help="with --register: seconds between checks that the "
                                                 "hub still lists this service (it joins again if not)")] = 10.0,
    mode: Annotated[Optional[list[str]], typer.Option("--mode", metavar="AXIS=VALUE",
                                            help="a named variant of the env (repeatable); defaults are the published benchmark's")] = None,
    step_policy: Annotated[Optional[str], typer.Option("--step-policy", metavar="adaptive|inline|thread", show_default=False,
        help="where env calls run: in worker threads until measured cheap, then on the event loop (adaptive), always on "
             "the loop (inline), or always in threads (thread); default the env's own declaration (services/step_policy.py)")] = None,
    grading: Annotated[str | None, typer.Option("--grading", help="shorthand for --mode grading=VALUE")] = None,
    observation: Annotated[str | None, typer.Option("--observation", help="shorthand for --mode observation=VALUE")] = None,
) -> None:
    """Serve one environment over HTTP (v1 API + AgentGym-compatible surface).

    Stops gracefully on SIGINT, SIGTERM and SIGHUP alike (leaving the hub first with --register). With
    --workers N, a supervisor runs N such services on ports PORT..PORT+N-1, forwards those signals to them,
    and restarts one that dies (see services/workers.py)."""
    from services.app import ServiceSettings
    from services.http_guard import ConnectionLimits
    from services.runner import serve_env

    from services.step_policy import StepPolicyName

    choices = [p.value for p in StepPolicyName]
    if step_policy is not None and step_policy not in choices:
        fail(f"--step-policy must be one of {', '.join(choices)}, not {step_policy!r}")
    settings = ServiceSettings(max_sessions=max_sessions, session_ttl=session_ttl, expert_enabled=not no_expert,
                               max_sessions_per_client=max_sessions_per_client, max_sessions_per_address=max_sessions_per_address,
                               step_policy=step_policy)
    limits = ConnectionLimits(header_timeout=header_timeout, body_timeout=body_timeout, keep_alive_timeout=keep_alive_timeout)
    if register is not None:
        from wire.hub_api import normalize_base_url

        for flag, url in (("--register", register), ("--public-url", public_url)):
            try:
                if url is not None:
                    normalize_base_url(url)
            except ValueError as err:
                fail(f"{flag}: {err}")
    modes = _parse_modes(mode or [], grading, observation)
    if workers > 1:
        _serve_workers(ctx, env, workers, host=host, port=port, data_dir=data_dir, modes=modes, public_url=public_url,
                       registered=register is not None, hub_token=hub_token, log_level=log_level)
        return
    serve_env(env, host=host, port=port, data_dir=data_dir, settings=settings, log_level=log_level,
              register=register, public_url=public_url, hub_token=hub_token, modes=modes, heartbeat=heartbeat,
              limits=limits)


def worker_args(ctx: typer.Context) -> list[str]:
    """The `serve` arguments every worker shares, rebuilt from the parsed parameters (so a new option
    reaches the workers without a line here): `--option=VALUE` forms, then `--` and the env."""
    args: list[str] = []
    positional: list[str] = []
    for param in ctx.command.params:
        value = ctx.params.get(param.name or "")
        if param.name in _PER_WORKER or value is None:
            continue
        if param.param_type_name == "argument":
            positional.append(str(value))
        elif param.param_type_name == "option":
            flag = max(param.opts, key=len)  # the long form
            if getattr(param, "is_flag", False):
                off = getattr(param, "secondary_opts", None)  # an --x/--no-x pair
                if value or off:
                    args.append(flag if value else max(off, key=len))
            elif param.multiple:
                args.extend(f"{flag}={item}" for item in value)
            else:
                args.append(f"{flag}={value}")
    return [*args, "--", *positional]


def _serve_workers(ctx: typer.Context, env: str, workers: int, *, host: str, port: int, data_dir: Path | None,
                   modes: dict[str, str], public_url: str | None, registered: bool, hub_token: str | None,
                   log_level: str) -> None:
    import os

    from services.workers import WorkerFailed, serve_workers

    shared = worker_args(ctx)
    root = ["--debug"] if errors.DEBUG else []

    def command(worker_port: int, worker_url: str | None) -> list[str]:
        own = [f"--port={worker_port}"] + ([f"--public-url={worker_url}"] if worker_url else [])
        return [sys.executable, "-m", "cli.main", *root, "serve", *own, *shared]

    child_env = {k: v for k, v in os.environ.items() if k != "TRAJGYM_HUB_TOKEN"}
    if hub_token is not None:
        child_env["TRAJGYM_HUB_TOKEN"] = hub_token
    try:
        serve_workers(env, workers, command, host=host, port=port, data_dir=data_dir, modes=modes, public_url=public_url,
                      registered=registered, child_env=child_env, log_level=log_level)
    except WorkerFailed as err:
        if err.reported and not errors.DEBUG:  # the worker printed its own `error:` line
            raise typer.Exit(errors.EXIT_ERROR) from None
        raise


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)
