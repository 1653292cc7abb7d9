"""Store tests: migrations match the models, claims never overlap, leases, lost claims, run identity, and the
commit's compiled turn INSERT stores exactly what SQLAlchemy's typed insert stores (SQLite and PostgreSQL)."""

from __future__ import annotations

import threading
from dataclasses import asdict
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import JSON, inspect, insert, text
from sqlalchemy.exc import IntegrityError

from store import ConfigMismatch, EpisodeRecord, RunExists, Store, TurnRecord
from store.models import Base, Episode, Turn


def _open(store: Store, name: str = "r", n_tasks: int = 5, samples: int = 2, resume: bool = False, h: str = "h1"):
    return store.open_run(name, {"x": 1}, h, env="counter", model="m", policy="model", prompt_format="react",
                          tasks=[(f"t{i}", "test") for i in range(n_tasks)], samples=samples, resume=resume)


def test_migrations_create_exactly_the_models(tmp_path: Path) -> None:
    store = Store(str(tmp_path / "s.db"))
    with store.engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), Base.metadata) == []
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar() == "0002_outcomes_provenance"
    assert set(inspect(store.engine).get_table_names()) >= {"runs", "episodes", "turns"}
    Store(str(tmp_path / "s.db"))  # opening again is a no-op upgrade


def test_open_run_and_resume_rules(tmp_path: Path) -> None:
    store = Store(str(tmp_path / "s.db"))
    run, created = _open(store)
    assert created and run["total_episodes"] == 10 and len(store.episodes(run["id"])) == 10
    with pytest.raises(RunExists):
        _open(store)
    with pytest.raises(ConfigMismatch):
        _open(store, resume=True, h="other")
    again, created = _open(store, resume=True)
    assert not created and again["id"] == run["id"] and len(store.episodes(run["id"])) == 10
    with pytest.raises(IntegrityError):  # unique (run, task, sample)
        with store.engine.begin() as conn:
            conn.execute(Episode.__table__.insert(), {"run_id": run["id"], "env": "counter", "split": "test", "task_id": "t0",
                                                      "sample": 0, "attempt": 0, "claims": 0, "status": "pending"})


def test_concurrent_claims_never_overlap(tmp_path: Path) -> None:
    url = str(tmp_path / "s.db")
    run, _ = _open(Store(url), n_tasks=50, samples=4)
    got: dict[str, list[int]] = {}

    def claimer(name: str) -> None:
        store = Store(url, migrate=False)
        mine: list[int] = []
        while batch := store.claim(run["id"], name, 7, 60.0):
            mine.extend(c.id for c in batch)
        got[name] = mine

    threads = [threading.Thread(target=claimer, args=(f"w{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    all_ids = [i for ids in got.values() for i in ids]
    assert len(all_ids) == 200 and len(set(all_ids)) == 200
    rows = Store(url, migrate=False).episodes(run["id"])
    assert all(r["status"] == "claimed" and r["claims"] == 1 for r in rows)
    assert {r["worker"] for r in rows} == {name for name, ids in got.items() if ids}


def test_expired_lease_is_reclaimed_and_loser_cannot_commit(tmp_path: Path) -> None:
    store = Store(str(tmp_path / "s.db"))
    run, _ = _open(store, n_tasks=1, samples=1)
    (first,) = store.claim(run["id"], "a", 10, lease_s=-1.0)  # lease already over
    (second,) = store.claim(run["id"], "b", 10, lease_s=60.0)
    assert first.id == second.id and store.claim(run["id"], "c", 10, 60.0) == []
    rec = EpisodeRecord(episode_id=first.id, outcome="success", attempt=1, reward=1.0, success=True,
                        messages=[TurnRecord(step=0, role="system", content="s")])
    assert store.commit([rec], "a") == []          # a lost its claim: nothing written
    assert store.commit([rec], "b") == [first.id]  # b holds it
    assert store.commit([rec], "b") == []          # never twice
    (row,) = store.episodes(run["id"])
    assert (row["status"], row["worker"], row["claims"], row["outcome"]) == ("done", "b", 2, "success")
    assert len(store.turns(first.id)) == 1


def test_requeue_dead_local_worker_and_infra_errors(tmp_path: Path) -> None:
    store = Store(str(tmp_path / "s.db"))
    run, _ = _open(store, n_tasks=3, samples=1)
    import socket

    dead = f"{socket.gethostname()}:999999:1"  # no such pid
    remote = "elsewhere:1:1"                     # another host: left to its lease
    a, b, c = store.claim(run["id"], dead, 1, 600)[0], store.claim(run["id"], remote, 1, 600)[0], store.claim(run["id"], "x", 1, 600)[0]
    store.commit([EpisodeRecord(episode_id=c.id, outcome="infra_error", attempt=3, error="boom")], "x")
    assert store.requeue(run["id"]) == {"released": 1, "requeued": 1}
    by_id = {r["id"]: r for r in store.episodes(run["id"])}
    assert by_id[a.id]["status"] == "pending" and by_id[b.id]["status"] == "claimed"
    assert by_id[c.id]["status"] == "pending" and by_id[c.id]["outcome"] is None and by_id[c.id]["attempt"] == 3
    assert store.heartbeat(run["id"], remote, 600) == 1
    assert store.release([b.id], remote) == 1


def _varied_turns() -> list[TurnRecord]:
    """Turns with every kind of column value: NULLs, JSON lists and objects (unicode, nesting), booleans, floats."""
    return [
        TurnRecord(step=0, role="system", content="Sÿstem ✓"),
        TurnRecord(step=0, role="user", content="Go.", observation="obs", info={"k": [1, {"é": None}]}, env_ms=1.5),
        TurnRecord(step=1, role="assistant", content=None, tool_calls=[{"id": "c1", "function": {"name": "f", "arguments": "{}"}}],
                   prompt_tokens=60, completion_tokens=8, finish_reason="stop", token_ids=[1, 2, 3], prompt_token_ids=[],
                   logprobs=[-0.5, -1e-9, 0.0], latency_ms=2.25, queue_ms=0.0, seed=2**31 - 1),
        TurnRecord(step=1, role="tool", content="done", tool_call_id="c1", action='{"name":"f"}', observation="done",
                   reward=1.0, done=True, info={}, progress=0.5, truncated=False, invalid_action=False, env_ms=0.25),
        TurnRecord(step=1, role="user", content="Invalid action", invalid_action=True, done=False, reward=0.0),
    ]


def _raw_turns(store: Store, episode_id: int) -> list[tuple[object, ...]]:
    """The stored rows as the driver returns them (no type processing; JSON as its stored text)."""
    cols = [c.name for c in Turn.__table__.c if c.name not in ("id", "episode_id")]
    json_cols = {c.name for c in Turn.__table__.c if isinstance(c.type, JSON)}
    cast = "{}::text" if store.engine.dialect.name == "postgresql" else "{}"
    select_list = ", ".join(cast.format(c) if c in json_cols else c for c in cols)
    with store.engine.connect() as conn:
        return [tuple(r) for r in conn.exec_driver_sql(f"SELECT {select_list} FROM turns WHERE episode_id = {int(episode_id)} "
                                                       "ORDER BY idx")]


def _commit_stores_what_sqlalchemy_stores(store: Store) -> None:
    run, _ = _open(store, n_tasks=2, samples=1)
    fast, typed = store.claim(run["id"], "w", 2, 60.0)
    turns = _varied_turns()
    assert store.commit([EpisodeRecord(episode_id=fast.id, outcome="success", attempt=1, messages=turns)], "w") == [fast.id]
    with store.engine.begin() as conn:  # the same turns through SQLAlchemy's own typed executemany
        conn.execute(insert(Turn), [{"episode_id": typed.id, "idx": i, **asdict(t)} for i, t in enumerate(turns)])
    stored = _raw_turns(store, fast.id)
    assert len(stored) == len(turns) and stored == _raw_turns(store, typed.id)
    assert [TurnRecord(**{k: v for k, v in r.items() if k in TurnRecord.__slots__}) for r in store.turns(fast.id)] == turns


def test_commit_stores_exactly_what_sqlalchemy_stores(tmp_path: Path) -> None:
    _commit_stores_what_sqlalchemy_stores(Store(str(tmp_path / "s.db")))


@pytest.mark.postgres
def test_commit_stores_exactly_what_sqlalchemy_stores_postgres() -> None:
    from tests.support.postgres import fresh_schema_url

    with fresh_schema_url("tg_rows") as url:
        store = Store(url)
        try:
            _commit_stores_what_sqlalchemy_stores(store)
        finally:
            store.close()
