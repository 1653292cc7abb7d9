"""The hub and two env services as real processes: self-registration, placement by name, leaving, dying."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from wire.errors import EnvClientError
from clients.hub_client import RegistryClient
from tests.support.placed import placed_expert_episodes
from tests.support.server import free_port

REPO = Path(__file__).resolve().parents[1]
TOKEN = "process-token"


@pytest.fixture
def spawn(tmp_path: Path) -> Iterator[Callable[..., subprocess.Popen[bytes]]]:
    procs: list[subprocess.Popen[bytes]] = []

    def start(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        full_env = {k: v for k, v in os.environ.items() if not k.startswith("TRAJGYM_")}
        full_env.update({"PYTHONPATH": str(REPO), **(env or {})})
        with open(tmp_path / f"proc{len(procs)}.log", "wb") as log:  # the child keeps its own handle
            proc = subprocess.Popen([sys.executable, "-m", "cli.main", *args], cwd=REPO, env=full_env,
                                    stdout=log, stderr=subprocess.STDOUT)
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)
    for log in sorted(tmp_path.glob("proc*.log")):
        sys.stderr.write(f"--- {log.name}\n{log.read_text(errors='replace')[-3000:]}\n")


async def wait_for(check: Callable[[], object], timeout: float = 60.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(EnvClientError):  # the hub may not be up yet
            if await check():  # type: ignore[misc]
                return
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.1)


async def test_self_registration_placement_and_leaving(spawn: Callable[..., subprocess.Popen[bytes]], tmp_path: Path) -> None:
    hub_port, ports = free_port(), [free_port(), free_port()]
    hub_url = f"http://127.0.0.1:{hub_port}"
    spawn("hub", "--port", str(hub_port), "--store", f"sqlite:///{tmp_path / 'hub.db'}", "--token", TOKEN,
          "--health-interval", "0.3", "--failures-before-down", "1")
    envs = [
        spawn("serve", "tests.support.counter_env:CounterEnv", "--port", str(ports[0]), "--register", hub_url, "--hub-token", TOKEN),
        spawn("serve", "tests.support.counter_env:CounterEnv", "--port", str(ports[1]), "--register", hub_url,
              env={"TRAJGYM_HUB_TOKEN": TOKEN}),
    ]
    urls = [f"http://127.0.0.1:{p}" for p in ports]
    async with RegistryClient(hub_url) as registry:  # reads need no token
        async def both_up() -> bool:
            return sorted(r.url for r in await registry.healthy_replicas("counter")) == sorted(urls)

        await wait_for(both_up, what="both env services to register")
        record = await registry.get_env("counter")
        assert record.info["max_turns"] == 20 and all(r.verified for r in record.replicas)

        # a short collection by env name: expert episodes placed through the hub
        results = await placed_expert_episodes(registry, "counter", 8, hold=0.2)
        assert all(ok for _, ok in results)
        assert sorted(url for url, _ in results) == sorted(urls * 4)

        # SIGTERM: the service leaves the hub (its replica is removed, the env stays)
        envs[0].send_signal(signal.SIGTERM)
        assert envs[0].wait(timeout=30) in (0, -signal.SIGTERM)  # uvicorn re-raises the signal after its graceful shutdown

        async def only_second() -> bool:
            return [r.url for r in (await registry.get_env("counter")).replicas] == [urls[1]]

        await wait_for(only_second, what="the first replica to leave")

        # SIGKILL: no goodbye; the hub's health checks mark it down
        envs[1].kill()
        envs[1].wait(timeout=10)

        async def second_down() -> bool:
            return [r.status.value for r in (await registry.get_env("counter")).replicas] == ["down"]

        await wait_for(second_down, what="the killed replica to be marked down")
