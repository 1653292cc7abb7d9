"""Dashboard reads without HTTP: turn grouping and thoughts, the progress curve, read-only engines,
and SQLite vs PostgreSQL giving the same documents for the same seeded runs."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from store.repo import Store
from services.dashboard import queries
from services.dashboard.db import ReadStore
from services.dashboard.schemas import Message, TaskFilter
from tests.support.dashboard_seed import RunSpec, seed_run, tasks_for
from tests.support.postgres import fresh_schema_url


def msg(idx: int, step: int, role: str, content: str | None = None, action: str | None = None, **kw: Any) -> Message:
    base: dict[str, Any] = {k: None for k in Message.model_fields}
    base.update(idx=idx, step=step, role=role, content=content, action=action, **kw)
    if role == "assistant":
        base["thought"] = queries.split_thought(content)
    return Message(**base)


def test_split_thought() -> None:
    assert queries.split_thought("Thought: go left.\nAction: left") == "go left."
    assert queries.split_thought("thought : a\nAction: x\nAction: y") == "a\nAction: x"
    assert queries.split_thought("just text, tool call follows") == "just text, tool call follows"
    assert queries.split_thought("Action: only") is None
    assert queries.split_thought(None) is None and queries.split_thought("") is None


def test_group_steps_with_parse_failures_and_tools() -> None:
    messages = [
        msg(0, 0, "system", "sys"),
        msg(1, 0, "user", "first obs", observation="first obs"),
        msg(2, 1, "assistant", "Thought: hmm", prompt_tokens=10, completion_tokens=2, latency_ms=5.0),
        msg(3, 0, "user", "Your reply has no 'Action:' line."),  # parse-failure feedback keeps the old step
        msg(4, 1, "assistant", "Thought: now\nAction: look", prompt_tokens=14, completion_tokens=3, latency_ms=7.0),
        msg(5, 1, "user", "obs 1", action="look", observation="you see a door", reward=0.0, done=False),
        msg(6, 2, "assistant", None, tool_calls=[{"id": "c1", "function": {"name": "open", "arguments": "{}"}}]),
        msg(7, 2, "tool", "opened", action='{"name":"open"}', observation="opened", reward=1.0, done=True, tool_call_id="c1"),
    ]
    steps = queries.group_steps(messages)
    assert [s.step for s in steps] == [0, 1, 2]
    assert [[m.idx for m in s.messages] for s in steps] == [[0, 1], [2, 3, 4, 5], [6, 7]]
    start, one, two = steps
    assert start.observation == "first obs" and start.action is None
    assert one.thought == "now" and one.action == "look" and one.observation == "you see a door"
    assert one.prompt_tokens == 24 and one.completion_tokens == 5 and one.latency_ms == 12.0
    assert two.thought is None and two.action == '{"name":"open"}' and two.reward == 1.0 and two.done is True
    # an episode cut before any env answer still shows its messages
    cut = queries.group_steps(messages[:3])
    assert [[m.idx for m in s.messages] for s in cut] == [[0, 1], [2]] and cut[1].action is None


def test_progress_curve() -> None:
    # turns -> (episodes, progress sum, successes); 4 episodes
    progress, success = queries._curve({1: (1, 1.0, 1), 3: (2, 0.5, 0), 4: (1, 1.0, 1)}, 4)
    assert success == [0, 0.25, 0.25, 0.25, 0.5]
    assert progress == [0, 0.25, 0.25, 0.375, 0.625]
    assert queries._mean_curves([[0, 1.0], [0, 0.5, 0.75]]) == [0, 0.75, 0.875]


def test_read_store_never_writes(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    Store(str(db)).close()
    ro = ReadStore(str(db))
    with pytest.raises(DBAPIError), ro.engine.begin() as conn:
        conn.execute(text("DELETE FROM runs"))
    with ro.engine.begin() as conn:
        assert ro.has_tables(conn)
    bare = ReadStore(str(tmp_path / "bare.db"))
    assert queries.list_runs(bare).runs == [] and queries.compare_models(bare).scores == []
    with pytest.raises(queries.NotFound):
        queries.run_detail(bare, 1)


def _fill(store: Store) -> None:
    seed_run(store, RunSpec("a", "webshop", "model-a", tasks_for("webshop", 30), samples=2, skill=0.5, seed=1))
    seed_run(store, RunSpec("b", "household", None, tasks_for("household", 20), skill=0.4, seed=2, policy="expert"))
    seed_run(store, RunSpec("i", "webshop", "model-b", tasks_for("webshop", 5), infra_only=True, seed=3))
    seed_run(store, RunSpec("l", "webshop", "model-b", tasks_for("webshop", 20), finish=8, claim_more=2, seed=4))


def _docs(ro: ReadStore) -> dict[str, Any]:
    drop = {"created_at", "started_at", "finished_at", "wall_s", "episode_time_s", "now", "rate_per_min", "eta_s",
            "timeline", "duration_s", "model_time_s", "env_time_s", "worker", "finished_last_minute", "recent",
            "workers", "latency_ms"}

    def clean(v: Any) -> Any:
        if isinstance(v, dict):
            return {k: clean(x) for k, x in v.items() if k not in drop}
        if isinstance(v, list):
            return [clean(x) for x in v]
        return round(v, 9) if isinstance(v, float) else v

    out = {"runs": queries.list_runs(ro).model_dump(mode="json"), "compare": queries.compare_models(ro).model_dump(mode="json"),
           "compare_dev": queries.compare_models(ro, "dev").model_dump(mode="json")}
    for rid in (1, 2, 3, 4):
        out[f"run{rid}"] = queries.run_detail(ro, rid).model_dump(mode="json")
        out[f"live{rid}"] = queries.live_view(ro, rid).model_dump(mode="json")
        for f in (TaskFilter(), TaskFilter(sort="mean_reward", order="desc", per_page=7, page=2),
                  TaskFilter(outcome="truncated", split="dev"), TaskFilter(solved="no", q="0001")):
            out[f"tasks{rid}{f}"] = queries.task_table(ro, rid, f).model_dump(mode="json")
    for eid in (1, 5, 61, 90):
        out[f"ep{eid}"] = queries.episode_view(ro, eid).model_dump(mode="json")
    return clean(out)


@pytest.fixture
def pg_url() -> Iterator[str]:
    with fresh_schema_url("tg_dash") as url:
        yield url


@pytest.mark.postgres
def test_postgres_gives_the_same_documents_as_sqlite(pg_url: str, tmp_path: Path) -> None:
    pg, lite = Store(pg_url), Store(str(tmp_path / "l.db"))
    try:
        _fill(pg)
        _fill(lite)
        ro_pg, ro_lite = ReadStore(pg_url), ReadStore(str(tmp_path / "l.db"))
        a, b = _docs(ro_pg), _docs(ro_lite)
        assert a.keys() == b.keys()
        for key in a:
            assert a[key] == b[key], key
        live = queries.live_view(ro_pg, 4)
        assert live.timeline[-1][1] == 8 and sum(live.workers.values()) == 2 and live.run.state == "running"
        with pytest.raises(DBAPIError), ro_pg.engine.begin() as conn:
            conn.execute(text("DELETE FROM runs"))
        ro_pg.engine.dispose()
        ro_lite.engine.dispose()
    finally:
        pg.close()
        lite.close()


def test_compare_keeps_runs_under_different_modes_apart(tmp_path: Path) -> None:
    """Two runs of one model, one under grading=official and one stored before modes (legacy): two series."""
    from sqlalchemy import update

    from store.models import Run

    db = tmp_path / "modes.db"
    store = Store(f"sqlite:///{db}")
    seed_run(store, RunSpec("old", "webshop", "model-a", tasks_for("webshop", 10), skill=0.2, seed=1))
    seed_run(store, RunSpec("new", "webshop", "model-a", tasks_for("webshop", 10), skill=0.9, seed=2))
    with store.engine.begin() as conn:
        conn.execute(update(Run).where(Run.name == "new").values(provenance={"env": {"modes": {"grading": "official"}}}))
    store.close()
    data = queries.compare_models(ReadStore(str(db)))
    rows = {(s.model, s.modes): s for s in data.scores if s.env == "webshop"}
    assert set(rows) == {("model-a · grading=legacy", "grading=legacy"), ("model-a · grading=official", "grading=official")}
    assert all(s.runs == 1 for s in rows.values())
    summaries = {r.name: r.modes for r in queries.list_runs(ReadStore(str(db))).runs}
    assert summaries == {"old": {"grading": "legacy"}, "new": {"grading": "official"}}
