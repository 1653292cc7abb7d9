"""Benchmark of the hub and placement: `python bench/bench_hub.py` (about a minute).

Starts the hub and three counter env services (self-registered) as processes, then measures:
hub read latency (GET /v1/envs/{name}), `Placement.acquire` latency, and expert episodes at
64 concurrent episodes through placement over the 3 replicas versus straight to one replica,
with the per-replica spread and the hub's RSS. Prints the figures.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.common import free_port, pct, rss_mb, start, stop
from clients.env_client import AsyncEnvClient
from wire.errors import EnvClientError
from clients.hub_client import Placement, RegistryClient

TOKEN = "bench-token"
CONCURRENCY = 64
DURATION = 8.0


def spawn(*args: str, log: Path) -> subprocess.Popen[bytes]:
    return start(["-m", "cli.main", *args], stdout=log.open("wb"), stderr=subprocess.STDOUT)


async def episodes(get_client, duration: float) -> tuple[int, int, dict[str, int], list[float]]:  # type: ignore[no-untyped-def]
    """Expert episodes by CONCURRENCY workers for `duration` s: (episodes, steps, per-url, acquire latencies)."""
    done = steps = 0
    per_url: dict[str, int] = {}
    acquire: list[float] = []
    deadline = time.monotonic() + duration

    async def worker(w: int) -> None:
        nonlocal done, steps
        i = w
        while time.monotonic() < deadline:
            t0 = time.perf_counter()
            client, url, release = await get_client()
            acquire.append(time.perf_counter() - t0)
            try:
                created = await client.create(task_id=f"counter-{i % 30}")
                while True:
                    result = await client.step(created.session_id, await client.expert_action(created.session_id))
                    steps += 1
                    if result.done:
                        break
                await client.close(created.session_id)
            finally:
                release()
            done += 1
            per_url[url] = per_url.get(url, 0) + 1
            i += CONCURRENCY

    await asyncio.gather(*(worker(w) for w in range(CONCURRENCY)))
    return done, steps, per_url, acquire


async def main() -> None:
    tmp = Path(tempfile.mkdtemp(prefix="bench_hub_"))
    hub_port = free_port()
    hub_url = f"http://127.0.0.1:{hub_port}"
    procs = [spawn("hub", "--port", str(hub_port), "--store", f"sqlite:///{tmp / 'hub.db'}", "--token", TOKEN,
                   "--health-interval", "2", log=tmp / "hub.log")]
    ports = [free_port() for _ in range(3)]
    for p in ports:
        procs.append(spawn("serve", "tests.support.counter_env:CounterEnv", "--port", str(p), "--register", hub_url,
                           "--hub-token", TOKEN, log=tmp / f"env{p}.log"))
    try:
        async with RegistryClient(hub_url) as registry:
            t0 = time.monotonic()
            while True:
                with contextlib.suppress(EnvClientError):
                    if len(await registry.healthy_replicas("counter")) == 3:
                        break
                if time.monotonic() - t0 > 60:
                    raise SystemExit("replicas did not register within 60 s")
                await asyncio.sleep(0.1)
            print(f"stack up (hub + 3 self-registered replicas) in {time.monotonic() - t0:.1f} s")

            lat = []
            for _ in range(300):
                t = time.perf_counter()
                await registry.get_env("counter")
                lat.append(time.perf_counter() - t)
            print(f"hub GET /v1/envs/counter sequential: p50 {pct(lat, .5):.2f} ms, p99 {pct(lat, .99):.2f} ms")
            t = time.perf_counter()
            await asyncio.gather(*(registry.get_env("counter") for _ in range(640)))
            print(f"hub GET /v1/envs/counter at 64 concurrent: {640 / (time.perf_counter() - t):.0f} req/s")

            placement = Placement(registry, "counter")

            async def placed():  # type: ignore[no-untyped-def]
                lease = await placement.acquire()
                return lease.client, lease.url, lease.release

            n, s, per_url, acq = await episodes(placed, DURATION)
            await placement.aclose()
            print(f"placement over 3 replicas, {CONCURRENCY} concurrent episodes for {DURATION:.0f} s: "
                  f"{n / DURATION:.0f} episodes/s, {s / DURATION:.0f} steps/s; acquire p50 {pct(acq, .5):.2f} ms, "
                  f"p99 {pct(acq, .99):.2f} ms; episodes per replica {sorted(per_url.values())}")

            direct = AsyncEnvClient(f"http://127.0.0.1:{ports[0]}", max_connections=CONCURRENCY)

            async def one():  # type: ignore[no-untyped-def]
                return direct, direct.base_url, lambda: None

            n, s, _, _ = await episodes(one, DURATION)
            await direct.aclose()
            print(f"direct to 1 replica, {CONCURRENCY} concurrent episodes for {DURATION:.0f} s: "
                  f"{n / DURATION:.0f} episodes/s, {s / DURATION:.0f} steps/s")
            print(f"hub RSS {rss_mb(procs[0].pid):.0f} MiB; "
                  f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}")
    finally:
        stop(*procs)


if __name__ == "__main__":
    asyncio.run(main())
