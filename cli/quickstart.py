"""`trajgym quickstart`: the whole pipeline on embedded defaults, in one command.

1. starts the hub (registry + dashboard) and the four env services as processes; the
   env services register themselves with the hub;
2. collects trajectories on each env's built-in test split, by env name through the
   hub — with the expert policy, or a model server (`--model URL`, or `--local-model`
   for the vLLM CPU server with SmolLM2-135M);
3. stores them in SQLite, prints the AgentEval table, exports a training set
   (OpenAI/TRL `messages` JSONL of successful episodes);
4. leaves the dashboard running and prints its URL; Ctrl-C stops every process.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import subprocess
import sys
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import httpx
import typer
from rich.console import Console
from rich.table import Table

from services.ports import free_port

if TYPE_CHECKING:
    from collector.collect import Collector

ENVS = ("webshop", "household", "sql", "qa")


class QuickstartError(RuntimeError):
    pass


@dataclass
class Services:
    """Child processes (hub + env services) with their logs; stopped together."""

    workdir: Path
    procs: list[tuple[str, subprocess.Popen[bytes]]] = field(default_factory=list)

    def start(self, name: str, *args: str) -> subprocess.Popen[bytes]:
        logs = self.workdir / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        with open(logs / f"{name}.log", "wb") as log:
            proc = subprocess.Popen([sys.executable, "-m", "cli.main", *args], stdout=log, stderr=subprocess.STDOUT,
                                    start_new_session=True)
        self.procs.append((name, proc))
        return proc

    def check_alive(self) -> None:
        for name, proc in self.procs:
            if proc.poll() is not None:
                tail = (self.workdir / "logs" / f"{name}.log").read_text(errors="replace")[-2000:]
                raise QuickstartError(f"{name} exited with {proc.returncode}:\n{tail}")

    def stop(self) -> None:
        for _, proc in self.procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for _, proc in self.procs:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)


def wait_for_envs(services: Services, hub_url: str, names: tuple[str, ...], timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        services.check_alive()
        try:
            listed = httpx.get(f"{hub_url}/v1/envs", timeout=5).json()
            up = {e["name"] for e in listed.get("envs", listed) if any(r.get("status") == "up" for r in e.get("replicas", []))}
            if set(names) <= up:
                return
        except (httpx.HTTPError, ValueError, AttributeError, TypeError):
            pass
        if time.monotonic() > deadline:
            raise QuickstartError(f"env services did not register with the hub within {timeout:.0f} s "
                                  f"(logs in {services.workdir / 'logs'})")
        time.sleep(0.2)


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


async def _collect_with_progress(collector: "Collector", name: str, console: Console) -> None:
    from collector.display import make_progress, progress_line

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


def quickstart(workdir: Path, *, model: str | None = None, local_model: bool = False, limit: int | None = None,
               concurrency: int = 16, wait: bool = True, hub_port: int = 8700, console: Console | None = None) -> dict[str, object]:
    """Run the pipeline; returns what it produced (store URL, run names, export path, dashboard URL)."""
    from collector.collect import Collector
    from collector.config import JobConfig, Policy, PromptFormat, Sampling
    from collector.export.filters import Curation
    from collector.export.pipeline import ExportFormat, export_runs
    from store import Store

    console = console or Console(width=None if sys.stdout.isatty() else 120)
    workdir.mkdir(parents=True, exist_ok=True)
    store_url = f"sqlite:///{(workdir / 'trajgym.db').resolve()}"
    token = secrets.token_hex(16)
    services = Services(workdir)
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    with ExitStack() as stack:
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
            services.start("hub", "hub", "--port", str(hub_port), "--store", store_url, "--token", token)
            for name in ENVS:
                services.start(name, "serve", name, "--port", str(free_port()), "--register", hub_url, "--hub-token", token)
            wait_for_envs(services, hub_url, ENVS)
        console.print(f"[green]✓[/green] hub {hub_url} with {', '.join(ENVS)} registered")

        policy = Policy.model if model else Policy.expert
        run_names: list[str] = []
        for name in ENVS:
            run = f"quickstart-{name}-{policy.value}-{stamp}"
            job = JobConfig(run_name=run, env=name, hub=hub_url, store=store_url, policy=policy, model=model,
                            prompt_format=PromptFormat.react, constrain_actions=bool(model), split="test",
                            limit=limit if limit is not None else (8 if model else None), concurrency=concurrency,
                            max_turns=8 if model else None, sampling=Sampling(max_tokens=128))
            asyncio.run(_collect_with_progress(Collector(job), name, console))
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
            except KeyboardInterrupt:
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
    """Run the whole pipeline on built-in data: env services + hub, collect, score, export, dashboard."""
    if model and local_model:
        typer.echo("error: give --model URL or --local-model, not both", err=True)
        raise typer.Exit(2)
    try:
        quickstart(workdir, model=model, local_model=local_model, limit=limit, concurrency=concurrency,
                   wait=not no_wait, hub_port=hub_port)
    except QuickstartError as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(1) from err


def register(app: typer.Typer) -> None:
    app.command("quickstart")(quickstart_command)
