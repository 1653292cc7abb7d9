"""The multi-host harness's own checks, without namespaces: the trajectory replay that proves no episode
holds a lost host's partial turns can fail, and the skip reasons say why."""

from __future__ import annotations

import copy
import shutil
from pathlib import Path
from typing import Any

import pytest

from collector.collect import Collector
from collector.config import JobConfig
from store import Store
from tests.support import collector as collector_setup
from tests.support import netns, pg_cluster
from tests.support.multihost import expected_steps, replay_ok

env_url = collector_setup.env_url


@pytest.fixture(scope="module")
def stored(env_url: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[dict[str, Any]]]:
    """Real stored trajectories of the counter env (expert policy), by task id."""
    import asyncio

    db = str(tmp_path_factory.mktemp("replay") / "r.db")
    job = JobConfig(run_name="replay", env=env_url, policy="expert", split="test", store=db, concurrency=4)
    summary = asyncio.run(Collector(job).run())
    store = Store(db)
    return {e["task_id"]: store.turns(e["id"]) for e in store.episodes(summary.run_id)}


def test_stored_episodes_replay(stored: dict[str, list[dict[str, Any]]]) -> None:
    assert len(stored) == 10
    for task_id, turns in stored.items():
        assert replay_ok(turns, task_id) is None, (task_id, turns)


def test_a_stitched_or_cut_trajectory_is_caught(stored: dict[str, list[dict[str, Any]]]) -> None:
    task_id = next(t for t in stored if expected_steps(t) >= 3)
    turns = stored[task_id]
    first_add = turns[3]["action"]
    # an attempt that resumed another replica's state: the first observation is not value 0
    resumed = copy.deepcopy(turns)
    resumed[1]["content"] = resumed[1]["content"].replace("Current value: 0.", "Current value: 4.")
    assert "value 0" in (replay_ok(resumed, task_id) or "")
    # a lost step (the partial attempt's turns dropped in the middle)
    cut = copy.deepcopy(turns[:2] + turns[4:])
    for i, t in enumerate(cut):
        t["idx"] = i
    assert replay_ok(cut, task_id) is not None
    # an observation that is not the result of the action before it
    wrong = copy.deepcopy(turns)
    wrong[3]["observation"] = "Current value: 1." if first_add != "add[1]" else "Current value: 2."
    assert "gave" in (replay_ok(wrong, task_id) or "")
    # an episode that did not finish at the target
    unfinished = copy.deepcopy(turns)
    unfinished[-1]["observation"] = "Wrong."
    assert "finish" in (replay_ok(unfinished, task_id) or "")


def test_skip_reasons(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(netns.os, "geteuid", lambda: 1000)
    assert netns.why_unavailable() == "needs root to make network namespaces (ip netns)"
    monkeypatch.setattr(netns.os, "geteuid", lambda: 0)
    real_which = shutil.which
    monkeypatch.setattr(netns.shutil, "which", lambda tool: None if tool == "ip" else real_which(tool))
    assert "`ip` is not installed" in (netns.why_unavailable() or "")
    monkeypatch.setattr(pg_cluster, "pg_bin", lambda: None)
    assert "no PostgreSQL server binaries" in (pg_cluster.why_unavailable() or "")


def test_pg_bin_is_debians_newest(tmp_path: Path) -> None:
    found = pg_cluster.pg_bin()
    if found is None:
        pytest.skip("no /usr/lib/postgresql/*/bin/initdb here")
    assert (found / "initdb").is_file() and (found / "pg_ctl").is_file()
