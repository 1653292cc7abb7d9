"""Session lifecycle: 1,000 abandoned sessions are reaped by the TTL; a served CLI process works."""

from __future__ import annotations

import asyncio
import gc
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil

from clients.env_client import AsyncEnvClient
from services.app import ServiceSettings, create_app
from tests.support.counter_env import CounterEnv
from tests.support.server import free_port, running_server


async def test_thousand_abandoned_sessions_are_reaped() -> None:
    ttl = 4.0
    app = create_app(CounterEnv, settings=ServiceSettings(max_sessions=5000, session_ttl=ttl, reap_interval=0.25))
    proc = psutil.Process()
    with running_server(app) as url:
        async with AsyncEnvClient(url) as client:
            await asyncio.gather(*(client.create(seed=i) for i in range(50)))  # warm up
            await asyncio.sleep(ttl + 1)
            gc.collect()
            baseline = proc.memory_info().rss
            sem = asyncio.Semaphore(64)

            async def open_and_abandon(i: int) -> None:
                async with sem:
                    created = await client.create(seed=i)
                    await client.step(created.session_id, "add[1]")

            await asyncio.gather(*(open_and_abandon(i) for i in range(1000)))
            peak = proc.memory_info().rss
            created = httpx.get(f"{url}/metrics").text
            assert 'trajgym_sessions_created_total{env="counter"} 1050.0' in created
            deadline = time.monotonic() + 60
            while (await client.health())["sessions"] and time.monotonic() < deadline:
                await asyncio.sleep(0.25)
            assert (await client.health())["sessions"] == 0
            gc.collect()
            after = proc.memory_info().rss
            metrics = httpx.get(f"{url}/metrics").text
    assert 'trajgym_sessions_closed_total{env="counter",reason="expired"}' in metrics
    print(f"\n[reaper] RSS baseline {baseline / 2**20:.1f} MiB, with 1,000 sessions {peak / 2**20:.1f} MiB, "
          f"after reaping {after / 2**20:.1f} MiB (delta {(after - baseline) / 2**20:+.1f} MiB)")


def test_trajgym_serve_process_plays_an_episode() -> None:
    port = free_port()
    root = Path(__file__).resolve().parents[1]
    proc = subprocess.Popen([sys.executable, "-m", "cli.main", "serve", "tests.support.counter_env:CounterEnv", "--port", str(port)],
                            cwd=root, env={**os.environ, "PYTHONPATH": str(root)})
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{url}/readyz").status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline and proc.poll() is None, "service did not start"
            time.sleep(0.1)
        with httpx.Client(base_url=url) as http:
            sid = http.post("/v1/sessions", json={"task_id": "counter-2"}).json()["session_id"]
            done = False
            while not done:
                action = http.get(f"/v1/sessions/{sid}/expert").json()["action"]
                step = http.post(f"/v1/sessions/{sid}/step", json={"action": action}).json()
                done = step["done"]
            assert step["reward"] == 1.0 and step["info"]["success"] is True
    finally:
        proc.terminate()
        proc.wait(timeout=10)
