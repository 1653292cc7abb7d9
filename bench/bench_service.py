"""Env steps/s over HTTP vs a bare FastAPI no-op, at 1, 32 and 256 concurrent sessions.

Starts two uvicorn processes (one worker each): the generic env service with the
counter test env, and bench/noop_app.py. The load generator (aiohttp, keep-alive)
runs in this process. Each row sends the same number of requests; the env row
steps open sessions (`add[1]`, reopening a session when it ends).

    python bench/bench_service.py [--requests 4096] [--concurrency 1 32 256]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import free_port, pct, run_workers, start, stop, wait_ready


async def run_noop(url: str, requests: int, concurrency: int) -> tuple[float, list[float]]:
    latencies: list[float] = []
    conn = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=conn) as http:
        per_worker = requests // concurrency

        async def worker(_: int) -> None:
            for _ in range(per_worker):
                t = time.perf_counter()
                async with http.post(f"{url}/noop", json={"action": "add[1]"}) as r:
                    await r.read()
                    assert r.status == 200
                latencies.append(time.perf_counter() - t)

        elapsed = await run_workers(worker, concurrency)
        return len(latencies) / elapsed, latencies


async def run_env(url: str, requests: int, concurrency: int) -> tuple[float, list[float]]:
    latencies: list[float] = []
    conn = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=conn) as http:
        per_worker = requests // concurrency

        async def open_session(seed: int) -> str:
            async with http.post(f"{url}/v1/sessions", json={"seed": seed, "split": "train"}) as r:
                return (await r.json())["session_id"]

        async def worker(k: int) -> None:
            sid = await open_session(k)
            for _ in range(per_worker):
                t = time.perf_counter()
                async with http.post(f"{url}/v1/sessions/{sid}/step", json={"action": "add[1]"}) as r:
                    body = await r.json()
                    assert r.status == 200, body
                latencies.append(time.perf_counter() - t)
                if body["done"]:
                    async with http.delete(f"{url}/v1/sessions/{sid}") as r:
                        await r.read()
                    sid = await open_session(k)
            async with http.delete(f"{url}/v1/sessions/{sid}") as r:
                await r.read()

        elapsed = await run_workers(worker, concurrency)
        return len(latencies) / elapsed, latencies


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--requests", type=int, default=4096)
    ap.add_argument("--concurrency", type=int, nargs="+", default=[1, 32, 256])
    args = ap.parse_args()
    noop_port = free_port()
    envs = {"thread": "tests.support.counter_env:CounterEnv", "inline": "tests.support.counter_env:InlineCounterEnv"}
    ports = {mode: free_port() for mode in envs}
    procs = [start(["-m", "uvicorn", "bench.noop_app:app", "--port", str(noop_port), "--log-level", "warning", "--no-access-log"])]
    procs += [start(["-m", "cli.main", "serve", envs[m], "--port", str(ports[m]), "--max-sessions", "100000"]) for m in envs]
    noop_url = f"http://127.0.0.1:{noop_port}"
    urls = {m: f"http://127.0.0.1:{p}" for m, p in ports.items()}
    try:
        wait_ready(f"{noop_url}/docs", timeout=30)
        for url in urls.values():
            wait_ready(f"{url}/readyz", timeout=30)
            await run_env(url, 512, 8)  # warm-up
        await run_noop(noop_url, 512, 8)
        print("env steps run in a worker thread ('thread', the default) or on the event loop ('inline', env opts in)")
        print(f"{'conc':>5} | {'mode':>6} | {'no-op req/s':>11} | {'env steps/s':>11} | {'ratio':>5} | {'no-op p50/p99 ms':>16} | {'env p50/p99 ms':>15}")
        for c in args.concurrency:
            for mode, url in urls.items():
                noop_rate, noop_lat = await run_noop(noop_url, args.requests, c)
                env_rate, env_lat = await run_env(url, args.requests, c)
                print(f"{c:>5} | {mode:>6} | {noop_rate:>11.0f} | {env_rate:>11.0f} | {env_rate / noop_rate:>5.2f} | "
                      f"{pct(noop_lat, .5):>7.1f}/{pct(noop_lat, .99):<8.1f} | {pct(env_lat, .5):>6.1f}/{pct(env_lat, .99):<8.1f}")
    finally:
        stop(*procs)


if __name__ == "__main__":
    asyncio.run(main())
