"""bench_service.py's servers and load generator: the OpenEnv peer is a real OpenEnv env (OpenEnv's own
client and validator accept it), and `bench.loadgen.drive` counts steps, episodes, reward mismatches and
errors as its docstring says, over real servers on real ports. No timings are checked."""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import Iterator

import pytest

openenv = pytest.importorskip("openenv", reason="OpenEnv (PyPI openenv, installed by `make install`) is absent")

from openenv import GenericEnvClient  # noqa: E402
from openenv.cli._validation import validate_running_environment  # noqa: E402

from bench import loadgen  # noqa: E402
from bench.common import start, stop, wait_ready  # noqa: E402
from bench.loadgen import Episode, drive  # noqa: E402
from services.ports import free_port  # noqa: E402
from tests.support.counter_env import CounterEnv  # noqa: E402

SERVERS = {"openenv": (["-m", "bench.openenv_peer"], "/health"), "ws_noop": (["-m", "bench.ws_noop_app"], "/health"),
           "http_noop": (["-m", "bench.noop_app"], "/docs"),
           "v1": (["-m", "cli.main", "serve", "tests.support.counter_env:CounterEnv"], "/readyz")}


@pytest.fixture(scope="module")
def urls() -> Iterator[dict[str, str]]:
    ports = {name: free_port() for name in SERVERS}
    procs = {name: start([*argv, "--port", str(ports[name])], stderr=subprocess.PIPE) for name, (argv, _) in SERVERS.items()}
    try:
        for name, (_, ready) in SERVERS.items():
            wait_ready(f"http://127.0.0.1:{ports[name]}{ready}", procs[name], timeout=60)
        yield {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
    finally:
        stop(*procs.values())


def counter(w: int) -> Iterator[Episode]:
    while True:
        yield Episode(None, w, ("add[1]",) * CounterEnv.max_turns)


def test_openenv_client_plays_the_peer(urls: dict[str, str]) -> None:
    """OpenEnv's own client: reset, steps to the turn limit, the env's observation fields; its validator passes."""
    with GenericEnvClient(base_url=urls["openenv"]).sync() as client:
        first = client.reset(task_id="counter-2")
        assert first.observation["task_id"] == "counter-2" and first.observation["observation"].startswith("Reach 19")
        result = client.step({"action": "add[9]"})
        assert result.observation["observation"] == "Current value: 9." and not result.done
        result = client.step({"action": "add[9]"})
        result = client.step({"action": "add[1]"})
        result = client.step({"action": "finish[19]"})
        assert result.done and result.reward == 1.0
        assert client.state()["step_count"] == 4
    report = validate_running_environment(urls["openenv"])
    assert report["passed"], report["criteria"]


@pytest.mark.parametrize("row", ["openenv", "v1", "ws_noop", "http_noop"])
def test_drive_counts_steps_and_episodes(urls: dict[str, str], row: str) -> None:
    """3 workers, 3 × 25 step attempts: each plays one whole 20-turn episode and 5 steps of the next."""
    async def run() -> loadgen.Row:
        async with getattr(loadgen, row)(urls[row], 3) as connect:
            return await drive(connect, counter, 75, 3)

    result = asyncio.run(run())
    assert (result.errors, result.first_error) == (0, "")
    assert result.steps == 75 and len(result.latencies) == 75 and result.seconds > 0
    assert result.episodes == (3 if row in ("openenv", "v1") else 0)  # the no-ops never end an episode


def test_drive_counts_reward_mismatches(urls: dict[str, str]) -> None:
    """A replayed episode that scores other than its Episode's reward is a mismatch, not an error."""
    won = Episode("counter-0", None, ("add[5]", "finish[5]"), 1.0)  # counter-0's target is 5
    claimed = Episode("counter-0", None, ("add[5]", "finish[4]"), 1.0)

    def plan(w: int) -> Iterator[Episode]:
        while True:
            yield won if w == 0 else claimed

    async def run() -> loadgen.Row:
        async with loadgen.v1(urls["v1"], 2) as connect:
            return await drive(connect, plan, 8, 2)

    result = asyncio.run(run())
    assert (result.errors, result.steps, result.episodes, result.mismatches) == (0, 8, 4, 2)


@pytest.mark.parametrize("row", ["v1", "openenv"])
def test_errors_are_counted_not_raised(row: str) -> None:
    """Nothing listening: every attempt fails and is counted once; the row ends, having used its budget."""
    async def run() -> loadgen.Row:
        async with getattr(loadgen, row)(f"http://127.0.0.1:{free_port()}", 2) as connect:
            return await drive(connect, counter, 10, 2)

    result = asyncio.run(run())
    assert result.steps == 0 and result.first_error
    # v1: each worker's 5 attempts fail at opening a session; OpenEnv: each worker's connection fails once
    assert result.errors == (10 if row == "v1" else 2)
