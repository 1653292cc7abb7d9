"""The expert policy through the collector on every real env whose package exists (built-in data):
gold demonstrations are collected and stored, and each env is solvable end to end over HTTP."""

from __future__ import annotations

from pathlib import Path

import pytest

from collector.config import JobConfig
from collector.collect import Collector
from store import Store
from envs.registry import available, load_class
from services.app import create_app
from tests.support.server import running_server


@pytest.mark.parametrize("name", ["webshop", "household", "sql", "qa"])
async def test_expert_solves_real_env(tmp_path: Path, name: str) -> None:
    if name not in available():
        pytest.skip(f"env package {name} is not in this installation yet")
    env_cls = load_class(name)
    if not env_cls.has_expert():
        pytest.skip(f"{name} has no expert")
    with running_server(create_app(env_cls)) as url:
        job = JobConfig(run_name=f"expert-{name}", env=url, policy="expert", split="test", limit=3, concurrency=3,
                        store=str(tmp_path / "s.db"))
        summary = await Collector(job).run()
    store = Store(job.store)
    episodes = store.episodes(summary.run_id)
    assert len(episodes) == 3 and {e["env"] for e in episodes} == {env_cls.name}
    for ep in episodes:
        assert ep["outcome"] == "success", (ep["task_id"], ep["outcome"], ep["error"])
        assert ep["reward"] is not None and ep["reward"] > 0 and ep["turns"] >= 1
        turns = store.turns(ep["id"])
        assert [t["role"] for t in turns[:2]] == ["system", "user"]
        assert sum(1 for t in turns if t["role"] == "assistant") == ep["turns"]
