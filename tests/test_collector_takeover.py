"""A collector with nothing left to claim waits for the claims other collectors hold: it takes over the
episodes of a collector that died elsewhere once their lease runs out, and stops at once on Ctrl-C.

The dead peer is simulated by claims made in the store under a worker id of another host (so the
local liveness check at `--resume` cannot free them; only the lease can)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

from collector.collect import Collector
from collector.config import JobConfig
from store import Store
from tests.support import collector as collector_setup

env_url = collector_setup.env_url
GHOST = "another-machine:4242:1700000000000"
TEST_TASKS = [(f"counter-{i}", "test") for i in range(10)]


def _job(tmp_path: Path, env_url: str, lease: float) -> JobConfig:
    return JobConfig(run_name="takeover", env=env_url, policy="expert", split="test", store=str(tmp_path / "t.db"),
                     concurrency=2, lease_seconds=lease)


def _open_with_ghost_claims(job: JobConfig, n: int, ghost_lease: float) -> tuple[Store, int, list[int]]:
    store = Store(job.store)
    run, _ = store.open_run(job.run_name, job.model_dump(mode="json"), job.config_hash("counter", None), env="counter",
                            model=None, policy="expert", prompt_format="react", tasks=TEST_TASKS, samples=1, resume=False)
    ghost = store.claim(run["id"], GHOST, n, ghost_lease)
    return store, run["id"], [c.id for c in ghost]


def test_claims_elsewhere_counts_other_claims_with_the_earliest_lease(tmp_path: Path, env_url: str) -> None:
    job = _job(tmp_path, env_url, 30.0)
    store, run_id, ghost = _open_with_ghost_claims(job, 3, 60.0)
    mine = store.claim(run_id, "me:1:1", 2, 5.0)
    held, earliest = store.claims_elsewhere(run_id, {c.id for c in mine})
    assert held == 3 and earliest is not None
    assert timedelta(seconds=50) < earliest - datetime.now(UTC) <= timedelta(seconds=60)
    held, earliest = store.claims_elsewhere(run_id)  # own claims included when not excluded
    assert held == 5 and earliest - datetime.now(UTC) <= timedelta(seconds=5)  # type: ignore[operator]
    assert store.claims_elsewhere(run_id, set(ghost) | {c.id for c in mine}) == (0, None)


async def test_a_dead_peers_claims_are_taken_over_when_their_lease_ends(tmp_path: Path, env_url: str) -> None:
    job = _job(tmp_path, env_url, 30.0)
    store, run_id, ghost = _open_with_ghost_claims(job, 3, 1.5)
    summary = await Collector(job, resume=True).run()
    assert summary.requeued["released"] == 0  # another host's worker: not known dead here
    assert summary.counts == {"success": 10} and summary.stats.done == 10
    by_id = {e["id"]: e for e in store.episodes(run_id)}
    assert all(by_id[i]["claims"] == 2 and by_id[i]["worker"] == summary.worker for i in ghost)
    assert sum(e["claims"] == 1 for e in by_id.values()) == 7


async def test_peers_finishing_their_claims_end_the_wait(tmp_path: Path, env_url: str) -> None:
    """A live peer's claims are not taken: they end as the peer's commits (here: released by it), and the
    waiting collector then has nothing left and exits."""
    job = _job(tmp_path, env_url, 30.0)
    store, run_id, ghost = _open_with_ghost_claims(job, 3, 600.0)
    collector = Collector(job, resume=True)
    run = asyncio.create_task(collector.run())
    while collector.stats.done < 7:
        await asyncio.sleep(0.02)
    await asyncio.sleep(0.3)
    assert not run.done()  # waiting for the peer's 3 claims
    await asyncio.to_thread(store.release, ghost, GHOST)  # the peer gives them back (e.g. its Ctrl-C)
    summary = await asyncio.wait_for(run, 30)
    assert summary.counts == {"success": 10}


async def test_ctrl_c_while_waiting_for_peers_stops_at_once(tmp_path: Path, env_url: str) -> None:
    job = _job(tmp_path, env_url, 30.0)
    store, run_id, ghost = _open_with_ghost_claims(job, 3, 600.0)
    collector = Collector(job, resume=True)
    run = asyncio.create_task(collector.run())
    while collector.stats.done < 7:
        await asyncio.sleep(0.02)
    collector.request_stop()
    summary = await asyncio.wait_for(run, 10)
    assert summary.stopped and summary.counts == {"success": 7, "claimed": 3}
    assert {e["id"] for e in store.episodes(run_id) if e["worker"] == GHOST and e["status"] == "claimed"} == set(ghost)
