"""Helpers shared by the benchmark scripts in bench/.

Free loopback ports, percentiles in milliseconds, service subprocesses (start one from the repo root,
wait until it answers, stop it), `serve_app` (a bench ASGI app under uvicorn with the env service's
own settings), RSS readings, the open-files limit, and the two concurrent expert-episode drivers over
HTTP: `expert_episodes` (the server's expert picks each action) and `replay` (precomputed expert
trajectories, only the steps timed).

The scripts put the repo root on sys.path first, then `from bench.common import ...`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import resource
import statistics
import subprocess
import sys
import time
import urllib.request
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import psutil

from services.ports import free_port

if TYPE_CHECKING:
    from clients.env_client import AsyncEnvClient

ROOT = Path(__file__).resolve().parents[1]

_Out = int | IO[bytes] | None  # what subprocess.Popen takes for stdout / stderr


def pct(values: Sequence[float], q: float, *, last_rank: bool = False) -> float:
    """The q-quantile of `values` (seconds) in milliseconds; nan when there are none.

    The rank is int(q·n), clipped to the last value; with `last_rank` it is int(q·(n−1)) instead
    (the convention bench_qa.py and bench_webshop.py have always reported)."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    n = len(ordered)
    rank = int(q * (n - 1)) if last_rank else min(n - 1, int(q * n))
    return ordered[rank] * 1000


# ----- service subprocesses ---------------------------------------------------------------------
def start(argv: Sequence[str], *, stdout: _Out = subprocess.DEVNULL, stderr: _Out = subprocess.DEVNULL) -> subprocess.Popen[bytes]:
    """`python ARGV` in a subprocess, from the repo root with the repo on PYTHONPATH."""
    return subprocess.Popen([sys.executable, *argv], cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
                            stdout=stdout, stderr=stderr)


def serve_env(env: str, port: int, data_dir: Path | None = None, *, stderr: _Out = subprocess.DEVNULL) -> subprocess.Popen[bytes]:
    """`python -m cli.main serve ENV` on `port` (up to 10,000 sessions), with `--data-dir` if given."""
    cmd = ["-m", "cli.main", "serve", env, "--port", str(port), "--max-sessions", "10000"]
    if data_dir is not None:
        cmd += ["--data-dir", str(data_dir)]
    return start(cmd, stderr=stderr)


def wait_ready(url: str, proc: subprocess.Popen[bytes] | None = None, *, timeout: float = 60.0, interval: float = 0.1) -> None:
    """Poll `url` until it answers 200; RuntimeError if `proc` exits first or after `timeout` seconds."""
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited: {proc.stderr.read().decode() if proc.stderr else ''}")
        try:
            with urllib.request.urlopen(url, timeout=1) as resp:
                if resp.status == 200:
                    return
        except OSError:
            pass
        time.sleep(interval)
    raise RuntimeError(f"{url} did not become ready in {timeout:g} s")


def launch_env(env: str, data_dir: Path | None, port: int, *, timeout: float = 60.0,
               interval: float = 0.1) -> tuple[subprocess.Popen[bytes], float]:
    """Start `serve ENV` (stderr kept for the error message) and wait for /readyz: (process, launch → ready s)."""
    started = time.perf_counter()
    proc = serve_env(env, port, data_dir, stderr=subprocess.PIPE)
    try:
        wait_ready(f"http://127.0.0.1:{port}/readyz", proc, timeout=timeout, interval=interval)
    except RuntimeError:
        proc.kill()
        raise
    return proc, time.perf_counter() - started


async def wait_client_ready(client: AsyncEnvClient, attempts: int = 600, interval: float = 0.1) -> None:
    """Retry `GET /v1/info` until the service answers."""
    for _ in range(attempts):
        try:
            await client.info()
            return
        except Exception:  # noqa: BLE001 (any failure means: not up yet)
            await asyncio.sleep(interval)
    raise RuntimeError("server did not start")


@contextlib.asynccontextmanager
async def env_service(env: str, data_dir: Path | None = None,
                      **client_options: Any) -> AsyncIterator[tuple[AsyncEnvClient, subprocess.Popen[bytes]]]:
    """`serve ENV` on a free port; yields (a client to it once it answers, the server process), then stops it."""
    from clients.env_client import AsyncEnvClient

    port = free_port()
    proc = serve_env(env, port, data_dir)
    try:
        async with AsyncEnvClient(f"http://127.0.0.1:{port}", **client_options) as client:
            await wait_client_ready(client)
            yield client, proc
    finally:
        stop(proc)


def serve_app(app: Any, argv: Sequence[str] | None = None) -> None:
    """Serve the ASGI `app` on 127.0.0.1:`--port` with the uvicorn settings `trajgym serve` uses (same
    loop, HTTP protocol with its request deadlines, no access log, GIL switch interval and GC settings:
    `services.runner.tune_process`), until SIGTERM.

    The `if __name__ == "__main__"` of the bench apps (noop_app, ws_noop_app, openenv_peer)."""
    from services.http_guard import uvicorn_options
    from services.runner import run_server, tune_process

    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    port = ap.parse_args(argv).port
    tune_process()
    run_server(app, "127.0.0.1", port, log_level="warning", loop="auto", access_log=False, proxy_headers=False,
               **uvicorn_options())


def stop(*procs: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    """SIGTERM every process, then wait for each, killing any still running after `timeout` s."""
    for proc in procs:
        proc.terminate()
    for proc in procs:
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()


def rss_mb(pid: int | None = None) -> float:
    """RSS of process `pid` (default: this one) in MiB."""
    return psutil.Process(pid).memory_info().rss / 2**20


def vm_rss_kib(pid: int) -> int:
    """`VmRSS` of process `pid` from /proc/PID/status, in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for process {pid}")


def raise_open_files_limit() -> int:
    """Raise this process's soft RLIMIT_NOFILE to its hard limit (one descriptor per connection); the new limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else 2**20  # Linux refuses an infinite NOFILE
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    except (ValueError, OSError):
        return soft
    return target


# ----- concurrent load over HTTP ---------------------------------------------------------------------
async def run_workers(worker: Callable[[int], Awaitable[None]], concurrency: int) -> float:
    """Run worker(0) … worker(concurrency − 1) together; the wall time in seconds."""
    started = time.perf_counter()
    await asyncio.gather(*(worker(w) for w in range(concurrency)))
    return time.perf_counter() - started


async def expert_episodes(client: AsyncEnvClient, task_ids: Sequence[str], concurrency: int, seconds: float,
                          rates: str) -> None:
    """`concurrency` workers play expert episodes (create, expert GET + step until done, close) for
    `seconds`, then print one summary line. `rates` is formatted with `steps_per_s` and `episodes_per_s`."""
    step_lat: list[float] = []
    create_lat: list[float] = []
    successes = episodes = 0
    deadline = time.perf_counter() + seconds

    async def worker(w: int) -> None:
        nonlocal successes, episodes
        k = w
        while time.perf_counter() < deadline:
            t = time.perf_counter()
            created = await client.create(task_id=task_ids[k % len(task_ids)])
            create_lat.append(time.perf_counter() - t)
            k += concurrency
            while True:
                action = await client.expert_action(created.session_id)
                t = time.perf_counter()
                step = await client.step(created.session_id, action)
                step_lat.append(time.perf_counter() - t)
                if step.done:
                    break
            episodes += 1
            successes += int(step.reward == 1.0)
            await client.close(created.session_id)

    elapsed = await run_workers(worker, concurrency)
    print(f"  expert episodes: {rates.format(steps_per_s=len(step_lat) / elapsed, episodes_per_s=episodes / elapsed)}; "
          f"step p50 {pct(step_lat, .5):.1f} ms, p99 {pct(step_lat, .99):.1f} ms; create p50 {pct(create_lat, .5):.1f} ms, "
          f"p99 {pct(create_lat, .99):.1f} ms; expert success {successes}/{episodes}")


async def replay(client: AsyncEnvClient, trajectories: Sequence[tuple[str, Sequence[str]]], concurrency: int,
                 seconds: float) -> dict[str, float]:
    """`concurrency` workers replay (task_id, actions) expert trajectories for `seconds`, timing each /step;
    every finished episode must score reward 1. Steps, seconds, steps/s, episodes, p50/p99 step ms."""
    latencies: list[float] = []
    episodes = 0
    deadline = time.perf_counter() + seconds

    async def worker(w: int) -> None:
        nonlocal episodes
        k = w
        while time.perf_counter() < deadline:
            task_id, actions = trajectories[k % len(trajectories)]
            k += concurrency
            s = await client.create(task_id=task_id)
            for action in actions:
                t0 = time.perf_counter()
                r = await client.step(s.session_id, action)
                latencies.append(time.perf_counter() - t0)
                if r.done:
                    assert r.reward == 1.0, (task_id, r.reward)
                    episodes += 1
            await client.close(s.session_id)

    elapsed = await run_workers(worker, concurrency)
    return {"steps": len(latencies), "seconds": elapsed, "steps_per_s": len(latencies) / elapsed, "episodes": episodes,
            "p50_ms": 1000 * statistics.median(latencies), "p99_ms": pct(latencies, 0.99, last_rank=True)}
