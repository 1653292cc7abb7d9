"""Fault tests: model 500 / timeout / dropped connection, env service killed mid-episode, collector
killed with SIGKILL mid-run then resumed. Infra errors are retried, then stored as `infra_error`
with no reward, excluded from scores, and re-run by `--resume`; nothing is lost or stored twice."""

from __future__ import annotations

import asyncio
import math
import os
import signal
import subprocess
import sys
import time
from collections import deque
from pathlib import Path

import pytest

from collector.config import JobConfig
from collector.collect import Collector
from store.scoring import score_run
from store import Store
from tests.support import collector as collector_setup
from tests.support.collector import TARGETS
from tests.support.openai_stub import StubControl
from tests.support.server import free_port, start_counter_process

ROOT = Path(__file__).resolve().parents[1]
env_url = collector_setup.env_url  # fixtures (module-scoped counter env service, scripted model stub)
stub = collector_setup.stub


def _job(tmp_path: Path, env_url: str, model_url: str, **kw: object) -> JobConfig:
    base: dict[str, object] = {"run_name": "faults", "env": env_url, "model": model_url, "store": str(tmp_path / "s.db"),
                               "split": "test", "samples": 1, "concurrency": 4, "retry_backoff": 0.01,
                               "model_timeout": 0.4, "model_retries": 1, "max_attempts": 2}
    base.update(kw)
    return JobConfig.model_validate(base)


def _assert_complete(store: Store, run_id: int, tasks: list[str], samples: int) -> list[dict]:
    """Every task × sample exactly once, successful, with exactly one copy of its turns."""
    episodes = store.episodes(run_id)
    assert sorted((e["task_id"], e["sample"]) for e in episodes) == sorted((t, s) for t in tasks for s in range(samples))
    for ep in episodes:
        steps = math.ceil(TARGETS[ep["task_id"]] / 9) + 1
        assert (ep["status"], ep["outcome"], ep["reward"], ep["turns"]) == ("done", "success", 1.0, steps), ep
        turns = store.turns(ep["id"])
        assert [t["idx"] for t in turns] == list(range(2 + 2 * steps))
    return episodes


async def test_transient_model_faults_are_retried(tmp_path: Path, env_url: str, stub: tuple[str, StubControl]) -> None:
    url, control = stub
    control.faults = deque(["500", "timeout", "drop", "500"])
    job = _job(tmp_path, env_url, url, model_retries=4, concurrency=2, limit=4)
    summary = await Collector(job).run()
    assert control.faulted == 4 and summary.counts == {"success": 4}
    store = Store(job.store)
    eps = _assert_complete(store, summary.run_id, [f"counter-{i}" for i in range(4)], 1)
    assert all(e["attempt"] == 1 for e in eps)  # absorbed by per-call retries


@pytest.mark.parametrize("fault", ["500", "timeout", "drop"])
async def test_model_down_gives_infra_errors_never_reward_zero(tmp_path: Path, env_url: str,
                                                               stub: tuple[str, StubControl], fault: str) -> None:
    url, control = stub
    control.always = fault
    job = _job(tmp_path, env_url, url, limit=2, concurrency=2)
    summary = await Collector(job).run()
    assert summary.counts == {"infra_error": 2} and summary.stats.infra_retries == 2
    assert control.faulted == 2 * job.max_attempts * (job.model_retries + 1)
    store = Store(job.store)
    for ep in store.episodes(summary.run_id):
        assert (ep["outcome"], ep["reward"], ep["success"], ep["progress"], ep["turns"]) == ("infra_error", None, None, None, 0)
        assert ep["attempt"] == 2 and ep["error"].startswith("model:") and store.turns(ep["id"]) == []
    (score,) = score_run(store, summary.run_id)
    assert (score.episodes, score.success_rate, score.mean_reward, score.infra_errors) == (0, None, None, 2)
    # the model comes back: --resume re-runs the infra errors, each task once
    control.always = None
    again = await Collector(job, resume=True).run()
    assert again.requeued == {"released": 0, "requeued": 2} and again.counts == {"success": 2}
    eps = _assert_complete(store, summary.run_id, ["counter-0", "counter-1"], 1)
    assert all(e["attempt"] == 3 and e["claims"] == 2 and e["error"] is None for e in eps)




async def test_env_service_killed_mid_episode(tmp_path: Path, stub: tuple[str, StubControl]) -> None:
    url, control = stub
    control.delay = 0.03
    port = free_port()
    proc = start_counter_process(port)
    try:
        job = _job(tmp_path, f"http://127.0.0.1:{port}", url, split="all", concurrency=3, retry_backoff=0.05, env_timeout=2.0)
        collector = Collector(job)
        task = asyncio.create_task(collector.run())
        deadline = time.monotonic() + 30
        while collector.stats.done < 4 and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        proc.send_signal(signal.SIGKILL)  # mid-run: 3 episodes are in flight
        proc.wait()
        summary = await task
        assert summary.counts.get("success", 0) >= 4 and summary.counts.get("infra_error", 0) >= 3
        assert sum(summary.counts.values()) == 30
        store = Store(job.store)
        for ep in store.episodes(summary.run_id):
            if ep["outcome"] == "infra_error":
                assert ep["reward"] is None and ep["success"] is None and ep["error"].startswith("env")
                assert store.turns(ep["id"]) == []
        scores = score_run(store, summary.run_id)
        assert {s.split for s in scores} == {"train", "dev", "test"}
        assert sum(s.episodes for s in scores) == summary.counts["success"]
        assert all(s.success_rate in (1.0, None) for s in scores)
        assert sum(s.infra_errors for s in scores) == summary.counts["infra_error"]
        # the service restarts on the same port: resume completes the run, each task exactly once
        proc = start_counter_process(port)
        again = await Collector(job, resume=True).run()
        assert again.requeued["requeued"] == summary.counts["infra_error"]
        _assert_complete(store, summary.run_id, [f"counter-{i}" for i in range(30)], 1)
    finally:
        proc.kill()
        proc.wait()


async def test_kill9_collector_then_resume_exactly_once(tmp_path: Path, env_url: str, stub: tuple[str, StubControl]) -> None:
    url, control = stub
    control.delay = 0.02
    db = str(tmp_path / "k.db")
    args = ["--env", env_url, "--model", url, "--policy", "model", "--split", "all", "--samples", "2", "--concurrency", "4",
            "--store", db, "--run-name", "k9", "--prompt-format", "react", "--quiet", "--temperature", "0.7"]
    proc = subprocess.Popen([sys.executable, "-m", "cli.main", "collect", *args], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    store, run_id = _wait_for_successes(proc, db, "k9", 10)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    at_kill = store.progress(run_id)
    assert 10 <= at_kill.get("success", 0) < 60 and at_kill.get("claimed", 0) > 0
    job = JobConfig(run_name="k9", env=env_url, model=url, split="all", samples=2, concurrency=4, store=db,
                    prompt_format="react", sampling={"temperature": 0.7})
    summary = await Collector(job, resume=True).run()
    assert summary.requeued["released"] == at_kill["claimed"]
    assert summary.stats.done == 60 - at_kill["success"]
    eps = _assert_complete(store, run_id, [f"counter-{i}" for i in range(30)], 2)
    assert sum(1 for e in eps if e["claims"] == 2) == at_kill["claimed"]


def _wait_for_successes(proc: subprocess.Popen[bytes], db: str, run: str, n: int) -> tuple[Store, int]:
    """Poll the collector's SQLite store until `n` episodes succeeded (the process keeps running)."""
    store: Store | None = None
    run_id = 0
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
        try:
            if store is None and os.path.exists(db):
                store = Store(db, migrate=False)
            if store is not None and not run_id:
                run_id = store.get_run(run)["id"]
        except Exception:  # the collector is still creating the schema or the run
            continue
        if run_id and store is not None and store.progress(run_id).get("success", 0) >= n:
            return store, run_id
    raise AssertionError(f"collector did not reach {n} episodes (exit code {proc.poll()})")


async def test_ctrl_c_releases_in_flight_episodes(tmp_path: Path, env_url: str, stub: tuple[str, StubControl]) -> None:
    url, control = stub
    control.delay = 0.03
    db = str(tmp_path / "c.db")
    args = ["--env", env_url, "--model", url, "--split", "all", "--concurrency", "4", "--store", db, "--run-name", "cc"]
    proc = subprocess.Popen([sys.executable, "-m", "cli.main", "collect", *args], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    store, run_id = _wait_for_successes(proc, db, "cc", 5)
    proc.send_signal(signal.SIGINT)
    out = proc.communicate(timeout=30)[0].decode()
    assert proc.returncode == 130, out
    assert "stopping" in out and "stopped" in out
    after = store.progress(run_id)
    assert "claimed" not in after and after.get("pending", 0) > 0 and after["success"] >= 5, after
    job = JobConfig(run_name="cc", env=env_url, model=url, split="all", concurrency=4, store=db)
    summary = await Collector(job, resume=True).run()
    assert summary.requeued == {"released": 0, "requeued": 0} and summary.stats.done == after["pending"]
    _assert_complete(store, run_id, [f"counter-{i}" for i in range(30)], 1)
