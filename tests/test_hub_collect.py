"""A short collection by env *name*: the hub and two env services as processes, the collector
resolving the name through the hub and placing episodes on both replicas."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import httpx
from sqlalchemy import create_engine, text

from clients.hub_client import RegistryClient
from tests.support.server import free_port
from tests.test_hub_processes import REPO, TOKEN, spawn, wait_for  # noqa: F401  (spawn is a fixture)


def _sessions_created(url: str) -> float:
    for line in httpx.get(f"{url}/metrics").text.splitlines():
        if line.startswith("trajgym_sessions_created_total"):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


async def test_collect_by_env_name_through_the_hub(spawn: Callable[..., subprocess.Popen[bytes]], tmp_path: Path) -> None:  # noqa: F811
    hub_port, ports = free_port(), [free_port(), free_port()]
    hub_url = f"http://127.0.0.1:{hub_port}"
    spawn("hub", "--port", str(hub_port), "--store", f"sqlite:///{tmp_path / 'hub.db'}", "--token", TOKEN, "--health-interval", "0.3")
    for port in ports:
        spawn("serve", "tests.support.counter_env:CounterEnv", "--port", str(port), "--register", hub_url, "--hub-token", TOKEN)
    urls = sorted(f"http://127.0.0.1:{p}" for p in ports)
    async with RegistryClient(hub_url) as registry:
        async def both_up() -> bool:
            return sorted(r.url for r in await registry.healthy_replicas("counter")) == urls

        await wait_for(both_up, what="both replicas to register")

    store = f"sqlite:///{tmp_path / 'runs.db'}"
    result = subprocess.run(
        [sys.executable, "-m", "cli.main", "collect", "--env", "counter", "--hub", hub_url, "--policy", "expert",
         "--split", "train", "--concurrency", "8", "--store", store, "--run-name", "by-name", "--quiet"],
        cwd=REPO, env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"}, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    with create_engine(store).connect() as conn:
        rows = conn.execute(text("SELECT outcome, reward FROM episodes")).all()
    assert len(rows) == 15 and all(r == ("success", 1.0) for r in rows)
    per_replica = [_sessions_created(u) for u in urls]
    assert sum(per_replica) == 15 and min(per_replica) >= 3, per_replica  # spread over both replicas
