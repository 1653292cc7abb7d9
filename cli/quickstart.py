"""`trajgym quickstart`: the whole pipeline on embedded defaults, in one command.

1. starts the hub (registry + dashboard) and the four env services as processes; the
   env services register themselves with the hub;
2. collects trajectories on each env's built-in test split, by env name through the
   hub — with the expert policy, or a model server (`--model URL`, or `--local-model`
   for the vLLM CPU server with SmolLM2-135M);
3. stores them in SQLite, prints the AgentEval table, exports a training set
   (OpenAI/TRL `messages` JSONL of successful episodes);
4. leaves the dashboard running and prints its URL.

Ctrl-C, SIGTERM and SIGHUP alike stop everything in dependency order: the collector (its
in-flight episodes are released), the env services (they leave the hub), then the hub;
a SIGKILLed quickstart leaves nothing either (`cli/supervisor.py`). Run again in the same
folder, it adds new runs to the same store: the hub re-validates the replicas it knew.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import sys
import time
from contextlib import ExitStack
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import httpx
import typer
from rich.console import Console
from rich.table import Table

from cli.errors import CommandError, fail
from cli.supervisor import Interrupted, Services, StopSignals
from services.ports import free_port, port_is_free

if TYPE_CHECKING:
    from collector.collect import Collector

ENVS = ("webshop", "household", "sql", "qa")


class QuickstartError(CommandError):
    pass


def wait_for_envs(services: Services, hub_url: str, urls: dict[str, str], timeout: float = 120.0) -> None:
    """Until the hub lists each env with the replica this quickstart started (by URL) up."""
    deadline = time.monotonic() + timeout
    while True:
        services.check_alive()
        try:
            listed = httpx.get(f"{hub_url}/v1/envs", timeout=5).json()
            up = {(e["name"], r["url"]) for e in listed["envs"] for r in e["replicas"] if r.get("status") == "up"}
            if set(urls.items()) <= up:
                return
        except (httpx.HTTPError, ValueError, KeyError, TypeError):
            pass
        if time.monotonic() > deadline:
            raise QuickstartError(f"env services did not register with the hub within {timeout:.0f} s "
                                  f"(logs in {services.workdir / 'logs'})")
        time.sleep(0.2)


def port_taken(port: int) -> QuickstartError:
    return QuickstartError(f"port {port} (the hub and its dashboard) is already in use: is another `make run` / "
                           f"`trajgym quickstart` still running? Stop it (Ctrl-C in its terminal), or use another port: "
                           f"TRAJGYM_HUB_PORT={port + 1} make run (or --hub-port {port + 1})")


def scores_table(store_url: str, run_names: list[str]) -> Table:
    from store import Store
    from store.scoring import score_runs

    store = Store(store_url)
    try:
        runs = score_runs(store, run_names)
    finally:
        store.close()
    table = Table(title="AgentEval (built-in test splits)")
    for col in ("env", "split", "policy/model", "episodes", "success", "mean reward", "progress", "avg turns", "infra errors"):
        table.add_column(col, justify="left" if col in ("env", "split", "policy/model") else "right")

    def pct(x: float | None) -> str:
        return "–" if x is None else f"{x:.1%}"

    def num(x: float | None) -> str:
        return "–" if x is None else f"{x:.3f}"

    for run in runs:
        for s in run.scores:
            table.add_row(s.env, s.split, run.model or run.policy, str(s.episodes), pct(s.success_rate), num(s.mean_reward),
                          num(s.mean_progress), "–" if s.mean_turns is None else f"{s.mean_turns:.1f}", str(s.infra_errors))
    return table


async def _collect_with_progress(collector: "Collector", name: str, console: Console, signals: StopSignals) -> None:
    """One env's collection under a live progress bar; a stop signal asks the collector to stop."""
    from collector.display import make_progress, progress_line

    loop = asyncio.get_running_loop()
    def ask_to_stop() -> None:
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile: the collection is over anyway
            loop.call_soon_threadsafe(collector.request_stop)

    with signals.redirected(ask_to_stop):
        task = asyncio.create_task(collector.run())
        with make_progress(console) as progress:
            bar = progress.add_task(f"collect {name}", total=None, line="")
            while not task.done():
                s = collector.stats
                progress.update(bar, total=s.total or None, completed=s.already_done + s.done, line=progress_line(s))
                await asyncio.wait({task}, timeout=0.25)
            s = collector.stats
            progress.update(bar, total=s.total or 1, completed=s.already_done + s.done, line=progress_line(s))
        await task


class _StoppingOnExit:
    """Marks the stop as begun before the ExitStack unwinds (a signal then hurries it instead of raising)."""

    def __init__(self, signals: StopSignals) -> None:
        self.signals = signals

    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        self.signals.stopping = True


def quickstart(workdir: Path, *, model: str | None = None, local_model: bool = False, limit: int | None = None,
               concurrency: int = 16, wait: bool = True, hub_port: int = 8700, console: Console | None = None) -> dict[str, object]:
    """Run the pipeline; returns what it produced (store URL, run names, export path, dashboard URL).

    A stop signal raises `Interrupted` once everything is stopped, except while waiting on the
    dashboard (the normal way to end: it returns)."""
    from collector.collect import Collector
    from collector.config import JobConfig, Policy, PromptFormat, Sampling
    from collector.export.filters import Curation
    from collector.export.pipeline import ExportFormat, export_runs
    from store import Store

    console = console or Console(width=None if sys.stdout.isatty() else 120)
    if not port_is_free("127.0.0.1", hub_port):
        raise port_taken(hub_port)
    workdir.mkdir(parents=True, exist_ok=True)
    store_url = f"sqlite:///{(workdir / 'trajgym.db').resolve()}"
    token = secrets.token_hex(16)
    services = Services(workdir)
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    with StopSignals(on_force=services.kill) as signals, ExitStack() as stack, _StoppingOnExit(signals):
        services.signals = signals
        stack.callback(services.stop)
        if local_model:
            from services.model.server import ModelServer, setup

            with console.status("[bold]setting up the local model server (vLLM CPU, SmolLM2-135M; cached after the first run)"):
                setup()
            server = ModelServer()
            stack.callback(server.stop)
            with console.status(f"[bold]starting vLLM (log {server.log_file})"):
                server.start()
                server.wait_healthy()
            model = server.url
        hub_url = f"http://127.0.0.1:{hub_port}"
        with console.status("[bold]starting the hub and 4 env services"):
            services.start("hub", "hub", "--port", str(hub_port), "--store", store_url, "--token", token, tier=0)
            urls: dict[str, str] = {}
            for name in ENVS:
                port = free_port()
                urls[name] = f"http://127.0.0.1:{port}"
                services.start(name, "serve", name, "--port", str(port), "--register", hub_url, "--hub-token", token, tier=1)
            wait_for_envs(services, hub_url, urls)
        console.print(f"[green]✓[/green] hub {hub_url} with {', '.join(ENVS)} registered")

        policy = Policy.model if model else Policy.expert
        run_names: list[str] = []
        for name in ENVS:
            run = f"quickstart-{name}-{policy.value}-{stamp}"
            job = JobConfig(run_name=run, env=name, hub=hub_url, store=store_url, policy=policy, model=model,
                            prompt_format=PromptFormat.react, constrain_actions=bool(model), split="test",
                            limit=limit if limit is not None else (8 if model else None), concurrency=concurrency,
                            max_turns=8 if model else None, sampling=Sampling(max_tokens=128))
            asyncio.run(_collect_with_progress(Collector(job), name, console, signals))
            signals.raise_if_received()
            run_names.append(run)
            services.check_alive()

        console.print(scores_table(store_url, run_names))
        export_path = workdir / "export" / f"train-{stamp}.jsonl"
        export_path.parent.mkdir(parents=True, exist_ok=True)
        with console.status("[bold]exporting the training set"):
            store = Store(store_url)
            try:
                summary = export_runs(store, run_names, ExportFormat.messages, export_path, Curation(success_only=True))
            finally:
                store.close()
        console.print(f"[green]✓[/green] training set: {export_path} ({summary.rows} conversations, OpenAI/TRL messages)")
        result = {"store": store_url, "runs": run_names, "export": str(export_path), "dashboard": f"{hub_url}/dashboard",
                  "hub": hub_url}
        console.print(f"[green]✓[/green] results: {store_url}")
        console.print(f"[bold green]dashboard: {hub_url}/dashboard[/bold green]")
        if wait:
            console.print("Ctrl-C stops the hub, the env services and the dashboard.")
            try:
                while True:
                    services.check_alive()
                    time.sleep(1)
            except Interrupted:
                console.print("stopping...")
        return result


def quickstart_command(
    workdir: Annotated[Path, typer.Option(help="where the store, logs and exports go", envvar="TRAJGYM_WORKDIR")] = Path(".trajgym/quickstart"),
    model: Annotated[Optional[str], typer.Option("--model", help="OpenAI-compatible server URL (default: expert policy)")] = None,
    local_model: Annotated[bool, typer.Option("--local-model", help="set up and start the local vLLM CPU server")] = False,
    limit: Annotated[Optional[int], typer.Option(help="tasks per env (default: all test tasks; 8 with a model)")] = None,
    concurrency: Annotated[int, typer.Option(help="episodes in flight per env")] = 16,
    hub_port: Annotated[int, typer.Option(help="port of the hub and its dashboard", envvar="TRAJGYM_HUB_PORT")] = 8700,
    no_wait: Annotated[bool, typer.Option("--no-wait", help="stop everything once the export is written")] = False,
) -> None:
    """Run the whole pipeline on built-in data: env services + hub, collect, score, export, dashboard.

    Ctrl-C, SIGTERM or SIGHUP stops every process it started (the collector, the env services, then the hub)."""
    if model and local_model:
        fail("give --model URL or --local-model, not both")
    try:
        quickstart(workdir, model=model, local_model=local_model, limit=limit, concurrency=concurrency,
                   wait=not no_wait, hub_port=hub_port)
    except Interrupted as stop:
        typer.echo(f"stopped by {stop}: every process it started is stopped", err=True)
        raise typer.Exit(stop.exit_code) from None


def register(app: typer.Typer) -> None:
    app.command("quickstart")(quickstart_command)
