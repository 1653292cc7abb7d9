"""PostgreSQL: two collector processes on one run share the work through `FOR UPDATE SKIP LOCKED`
claims — every task × sample is stored exactly once and no episode is ever claimed twice.

Runs in a fresh uniquely named schema (dropped afterwards), so reruns never clash."""

from __future__ import annotations

import math
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from store import Store
from services.app import create_app
from tests.support.collector import TARGETS
from tests.support.counter_env import CounterEnv
from tests.support.openai_stub import create_stub
from tests.support.postgres import fresh_schema_url
from tests.support.server import running_server

pytestmark = pytest.mark.postgres

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def pg_url() -> Iterator[str]:
    with fresh_schema_url("tg_collector") as url:
        yield url


def test_two_processes_one_run_no_double_claim(pg_url: str) -> None:
    app, control = create_stub()
    control.delay = 0.05
    with running_server(create_app(CounterEnv)) as env_url, running_server(app) as model_url:
        args = ["--env", env_url, "--model", model_url, "--policy", "model", "--split", "all", "--samples", "2",
                "--concurrency", "4", "--store", pg_url, "--run-name", "pg-shared", "--resume", "--quiet",
                "--temperature", "0.7", "--seed", "1"]
        procs = [subprocess.Popen([sys.executable, "-m", "cli.main", "collect", *args], cwd=ROOT,
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT) for _ in range(2)]
        outputs = [p.communicate(timeout=120)[0].decode() for p in procs]
        for p, out in zip(procs, outputs):
            assert p.returncode == 0, out
    store = Store(pg_url)
    try:
        run = store.get_run("pg-shared")
        assert store.engine.dialect.name == "postgresql" and run["total_episodes"] == 60
        episodes = store.episodes(run["id"])
        assert sorted((e["task_id"], e["sample"]) for e in episodes) == sorted((f"counter-{i}", s) for i in range(30) for s in range(2))
        assert all(e["claims"] == 1 and e["attempt"] == 1 and e["outcome"] == "success" for e in episodes)
        by_worker: dict[str, int] = {}
        for e in episodes:
            by_worker[e["worker"]] = by_worker.get(e["worker"], 0) + 1
            steps = math.ceil(TARGETS[e["task_id"]] / 9) + 1
            assert [t["idx"] for t in store.turns(e["id"])] == list(range(2 + 2 * steps))
        assert len(by_worker) == 2 and all(n > 0 for n in by_worker.values()), by_worker
    finally:
        store.close()
