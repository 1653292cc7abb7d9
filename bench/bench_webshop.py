"""Benchmark of the web shop service on the real catalog (or the built-in one).

Starts `python -m cli.main serve webshop --data-dir DIR` in a subprocess and measures:
  1. start time: process launch → /readyz answers 200, and the server's RSS then;
  2. per-session memory: server RSS growth over N open sessions that each ran one search;
  3. throughput: 64 concurrent sessions replaying expert trajectories (computed locally on the
     same data, so only /step requests are timed) for a fixed duration: steps/s, p50/p99 latency.

Usage: python bench/bench_webshop.py [--data-dir ../shared/data/webshop] [--seconds 20] [--sessions 2000]
Bounded: every phase has a deadline; the server is stopped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import free_port, launch_env, replay, rss_mb, stop
from clients.env_client import AsyncEnvClient
from envs.webshop.env import WebShopEnv

DEFAULT_DATA = ROOT.parent / "shared" / "data" / "webshop"


_LOAD_PROBE = """
import json, sys, time, psutil
proc = psutil.Process()
before = proc.memory_info().rss
t0 = time.perf_counter()
from envs.webshop.env import WebShopEnv
t1 = time.perf_counter()
WebShopEnv.load(None if sys.argv[1] == "-" else __import__("pathlib").Path(sys.argv[1]))
t2 = time.perf_counter()
print(json.dumps({"import_s": t1 - t0, "load_s": t2 - t1, "mb": (proc.memory_info().rss - before) / 2**20}))
"""


def webshop_own_cost(data_dir: Path | None) -> dict[str, float]:
    """Import + load time and RSS of the web shop alone, in a fresh interpreter (no service code)."""
    out = subprocess.run([sys.executable, "-c", _LOAD_PROBE, str(data_dir) if data_dir else "-"], cwd=ROOT,
                         capture_output=True, text=True, timeout=120, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def expert_trajectories(data_dir: Path | None, n: int) -> list[tuple[str, list[str]]]:
    data = WebShopEnv.load(data_dir)
    env = WebShopEnv(data)
    out = []
    for task_id in data.task_ids()[:n]:
        env.reset(task_id=task_id)
        actions = []
        while not env.done:
            action = env.expert_action()
            env.step(action)
            actions.append(action)
        out.append((task_id, actions))
    return out


def env_memory(data_dir: Path | None, n: int = 2000) -> float:
    """KB per in-process `WebShopEnv` after reset + one search + opening an item (tracemalloc)."""
    data = WebShopEnv.load(data_dir)
    ids = data.task_ids()
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    envs = []
    for i in range(n):
        env = WebShopEnv(data)
        env.reset(task_id=ids[i % len(ids)])
        env.step("search[wireless bluetooth headphones noise cancelling]")
        env.step(env.valid_actions()[-1])
        envs.append(env)
    used = tracemalloc.get_traced_memory()[0] - base
    tracemalloc.stop()
    return used / 1024 / len(envs)


async def session_memory(url: str, pid: int, n: int) -> tuple[float, float, float]:
    async with AsyncEnvClient(url, max_connections=64) as client:
        before = rss_mb(pid)
        sem = asyncio.Semaphore(64)
        ids: list[str] = []

        async def one(i: int) -> None:
            async with sem:
                s = await client.create(seed=i)
                await client.step(s.session_id, "search[wireless bluetooth headphones noise cancelling]")
                ids.append(s.session_id)

        await asyncio.gather(*(one(i) for i in range(n)))
        after = rss_mb(pid)
        for sid in ids:
            await client.close(sid)
    return before, after, (after - before) * 1024 / n


async def throughput(url: str, trajectories: list[tuple[str, list[str]]], concurrency: int, seconds: float) -> dict[str, float]:
    async with AsyncEnvClient(url, max_connections=concurrency) as client:
        return await replay(client, trajectories, concurrency, seconds)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", type=Path, default=DEFAULT_DATA if DEFAULT_DATA.is_dir() else None)
    ap.add_argument("--builtin", action="store_true", help="use the built-in catalog instead")
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--sessions", type=int, default=2000)
    ap.add_argument("--concurrency", type=int, default=64)
    args = ap.parse_args()
    data_dir = None if args.builtin else args.data_dir
    print(f"data: {data_dir or 'built-in catalog'}; cpus: {os.cpu_count()}; load avg: {os.getloadavg()[0]:.2f}")

    t0 = time.perf_counter()
    trajectories = expert_trajectories(data_dir, 1000)
    print(f"expert trajectories computed locally: {len(trajectories)} in {time.perf_counter() - t0:.1f} s")

    print(f"in-process env state (reset + search + item page, observation text included): "
          f"{env_memory(data_dir):.1f} KB per session")

    own = webshop_own_cost(data_dir)
    print(f"web shop alone (fresh interpreter): import {own['import_s']:.2f} s + load {own['load_s']:.2f} s, "
          f"RSS +{own['mb']:.1f} MB")

    port = free_port()
    proc, start_s = launch_env("webshop", data_dir, port, interval=0.02)
    url = f"http://127.0.0.1:{port}"
    try:
        print(f"service start (launch → ready, whole `trajgym serve` process): {start_s:.2f} s; "
              f"RSS at ready: {rss_mb(proc.pid):.1f} MB")
        before, after, per_session_kb = asyncio.run(session_memory(url, proc.pid, args.sessions))
        print(f"{args.sessions} sessions after one search each: RSS {before:.1f} → {after:.1f} MB; "
              f"per session {per_session_kb:.1f} KB")
        result = asyncio.run(throughput(url, trajectories, args.concurrency, args.seconds))
        print(f"{args.concurrency} concurrent sessions, {result['seconds']:.1f} s: {result['steps']} steps, "
              f"{result['episodes']} expert episodes (all reward 1): {result['steps_per_s']:.0f} steps/s, "
              f"p50 {result['p50_ms']:.1f} ms, p99 {result['p99_ms']:.1f} ms")
        print(f"RSS after the run: {rss_mb(proc.pid):.1f} MB")
    finally:
        stop(proc)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
