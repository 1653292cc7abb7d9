"""`trajgym hub`: run the env registry (FastAPI under uvicorn) with the evaluation dashboard at /dashboard."""

from __future__ import annotations

import logging
from typing import Annotated

import typer

DEFAULT_STORE = "sqlite:///trajgym.db"


def hub(
    host: Annotated[str, typer.Option(help="interface to bind")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port")] = 8080,
    store: Annotated[str, typer.Option("--store", envvar="TRAJGYM_STORE", help="SQLAlchemy URL or SQLite file of the registry (and the trajectory store the dashboard reads)")] = DEFAULT_STORE,
    token: Annotated[str, typer.Option("--token", envvar="TRAJGYM_HUB_TOKEN", show_default=False,
                                       help="bearer token of the write routes (or TRAJGYM_HUB_TOKEN)")] = "",
    health_interval: Annotated[float, typer.Option(min=0.05, help="seconds between replica health checks")] = 5.0,
    health_timeout: Annotated[float, typer.Option(min=0.05, help="timeout of one replica probe (s)")] = 3.0,
    failures_before_down: Annotated[int, typer.Option(min=1, help="consecutive failed checks before a replica is down")] = 2,
    remove_after: Annotated[float, typer.Option(min=0, help="seconds a replica may stay down (not seen up) before it is "
                                                            "removed; 0 keeps it until it deregisters")] = 60.0,
    log_level: Annotated[str, typer.Option(help="log level")] = "warning",
    header_timeout: Annotated[float, typer.Option(min=0.01, max=3600, help="seconds a request line and headers may take (then 408, closed)")] = 10.0,
    body_timeout: Annotated[float, typer.Option(min=0.01, max=3600, help="seconds a request body may take after the headers")] = 30.0,
    keep_alive_timeout: Annotated[float, typer.Option(min=0.01, max=3600, help="seconds an idle keep-alive connection is kept")] = 5.0,
) -> None:
    """Run the hub: env registry with replicas and health checks (reads open, writes need the token).

    Stops gracefully on SIGINT, SIGTERM and SIGHUP alike."""
    from services.dashboard import create_dashboard_router
    from services.http_guard import ConnectionLimits, uvicorn_options
    from services.hub.app import HubSettings, create_hub_app
    from services.ports import bind_port
    from services.runner import run_server

    if not token:
        typer.echo("error: the hub needs a token: --token TOKEN or TRAJGYM_HUB_TOKEN", err=True)
        raise typer.Exit(2)
    logging.basicConfig(level=getattr(logging, log_level.upper(), logging.WARNING))
    settings = HubSettings(health_interval=health_interval, health_timeout=health_timeout, failures_before_down=failures_before_down,
                           remove_after=remove_after or None)
    bind_port(host, port).close()  # a taken port fails here, before the store is opened
    app = create_hub_app(store, token, settings=settings, extra_routers=[create_dashboard_router(store)])
    limits = ConnectionLimits(header_timeout=header_timeout, body_timeout=body_timeout, keep_alive_timeout=keep_alive_timeout)
    run_server(app, host, port, log_level=log_level, access_log=False, proxy_headers=False, **uvicorn_options(limits))


def register(app: typer.Typer) -> None:
    app.command("hub")(hub)
