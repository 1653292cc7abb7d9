"""`Store`: every read and write of the trajectory store (synchronous SQLAlchemy).

The engine calls it from one dedicated thread (`store.threaded`), so the
event loop never blocks on the database. Claims are one `UPDATE ... WHERE id IN
(SELECT ... FOR UPDATE SKIP LOCKED) RETURNING` statement: on PostgreSQL concurrent
claimers skip each other's locked rows; on SQLite the statement runs inside
`BEGIN IMMEDIATE`, which serialises writers. A claim carries a lease renewed by a
heartbeat; claims whose lease ran out, or whose worker process on this host is
dead, go back to the pending set. A finished episode is written with its turns in
one transaction, and only if this worker still holds its claim. Turns are inserted through
`RowInserter`: the INSERT compiled once, each row a tuple run through its columns' own
bind processors, with none of SQLAlchemy's per-row parameter dictionaries (at 10,000
episodes in flight those were a third of the commit's time).

A run keeps its provenance (what its data depends on beyond the config: versions, the
env's data digest, the model, prompts, tool schemas, sampling); joining a run with
`resume` refuses a job whose provenance differs in anything but `VOLATILE_PROVENANCE`.
"""

from __future__ import annotations

import operator
import os
import socket
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import fields
from datetime import UTC, datetime, timedelta
from typing import Any

import psutil
from sqlalchemy import Engine, Table, and_, bindparam, func, insert, or_, select, update
from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.exc import IntegrityError

from store.connect import make_engine
from store.migrate import upgrade
from store.models import Episode, Run, Turn
from store.records import ClaimedEpisode, EpisodeRecord, TurnRecord

_EPISODE_FIELDS = ("outcome", "attempt", "reward", "success", "progress", "turns", "prompt_tokens", "completion_tokens",
                   "model", "started_at", "finished_at", "duration_s", "model_time_s", "env_time_s", "error", "sampling")
VOLATILE_PROVENANCE = frozenset({"command"})  # recorded, but may differ between the processes of one run
_TURN_FIELDS = tuple(f.name for f in fields(TurnRecord))


class RowInserter:
    """A multi-row INSERT into `table` of `columns`, compiled once for `dialect`.

    Rows are sequences of Python values in `columns` order; each value goes through its column's
    bind processor (JSON encoding, booleans as SQLite integers, psycopg's JSON wrapper), so the rows
    stored are exactly those `conn.execute(insert(table), [dict, ...])` stores, without building a
    parameter dictionary per row and compiling its parameters again."""

    def __init__(self, table: Table, columns: Sequence[str], dialect: Dialect) -> None:
        self.columns = tuple(columns)
        compiled = insert(table).compile(dialect=dialect, column_keys=list(self.columns))
        self.sql = compiled.string
        self.positional = bool(compiled.positional)
        if self.positional:
            order = list(compiled.positiontup or ())
            if sorted(order) != sorted(self.columns):
                raise ValueError(f"unexpected bind names {order} for {self.columns}")
            self.order: list[int] | None = None if order == list(self.columns) else [self.columns.index(n) for n in order]
        procs: list[tuple[int, Callable[[Any], Any], Any]] = []
        for i, name in enumerate(self.columns):
            proc = table.c[name].type.dialect_impl(dialect).bind_processor(dialect)
            if proc is not None:
                procs.append((i, proc, proc(None)))
        self.processors = procs

    def params(self, rows: Iterable[Sequence[Any]]) -> list[Any]:
        """The driver's parameters of `rows`: tuples in the statement's order, or dicts by name."""
        out: list[Any] = []
        procs, order, names = self.processors, self.order if self.positional else None, self.columns
        for raw in rows:
            row = list(raw)
            for i, proc, null in procs:
                value = row[i]
                row[i] = null if value is None else proc(value)
            if not self.positional:
                out.append(dict(zip(names, row)))
            elif order is None:
                out.append(tuple(row))
            else:
                out.append(tuple(row[i] for i in order))
        return out

    def execute(self, conn: Connection, rows: Iterable[Sequence[Any]]) -> None:
        params = self.params(rows)
        if params:
            conn.exec_driver_sql(self.sql, params)


_turn_values = operator.attrgetter(*_TURN_FIELDS)


class RunExists(Exception):
    pass


class RunNotFound(LookupError):
    pass


class ConfigMismatch(Exception):
    pass


def provenance_changes(old: Any, new: Any, path: str = "") -> list[str]:
    """Dotted paths where two provenance records differ (top-level `VOLATILE_PROVENANCE` keys ignored)."""
    if isinstance(old, dict) and isinstance(new, dict):
        out: list[str] = []
        for key in sorted(set(old) | set(new), key=str):
            if not path and key in VOLATILE_PROVENANCE:
                continue
            out += provenance_changes(old.get(key), new.get(key), f"{path}.{key}" if path else str(key))
        return out
    return [] if old == new else [path or "(all)"]


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _dig(record: Any, path: str) -> Any:
    for key in path.split("."):
        record = record.get(key) if isinstance(record, dict) else None
    return record


def utcnow() -> datetime:
    return datetime.now(UTC)


def worker_id() -> str:
    """host:pid:start-time — unique per process, and checkable for liveness on this host."""
    proc = psutil.Process(os.getpid())
    return f"{socket.gethostname()}:{proc.pid}:{int(proc.create_time() * 1000)}"


def worker_alive(worker: str) -> bool | None:
    """True/False for a worker of this host, None for a worker elsewhere (unknown)."""
    parts = worker.rsplit(":", 2)
    if len(parts) != 3 or parts[0] != socket.gethostname():
        return None
    try:
        pid, started = int(parts[1]), int(parts[2])
        return int(psutil.Process(pid).create_time() * 1000) == started
    except (ValueError, psutil.NoSuchProcess, psutil.AccessDenied):
        return False


class Store:
    def __init__(self, url: str, migrate: bool = True) -> None:
        self.url = url
        self.engine: Engine = make_engine(url)
        if migrate:
            upgrade(self.engine)
        self._turn_insert = RowInserter(Turn.__table__, ("episode_id", "idx", *_TURN_FIELDS), self.engine.dialect)

    def close(self) -> None:
        self.engine.dispose()

    # ----- runs ---------------------------------------------------------------------
    def get_run(self, name: str) -> dict[str, Any]:
        with self.engine.begin() as conn:
            row = conn.execute(select(Run).where(Run.name == name)).mappings().first()
        if row is None:
            raise RunNotFound(f"no run named {name!r} in this store")
        return dict(row)

    def open_run(self, name: str, config: dict[str, Any], config_hash: str, *, env: str, model: str | None,
                 policy: str, prompt_format: str, tasks: Sequence[tuple[str, str]], samples: int,
                 resume: bool, provenance: dict[str, Any] | None = None) -> tuple[dict[str, Any], bool]:
        """Create the run with one pending episode per task × sample, or (resume) join the existing one.

        Returns (run, created). Race-safe: of several processes creating the same run, one
        inserts it and the others find it (the unique name decides). Joining needs the same
        config hash and the same provenance (a run stored without one gets this job's)."""
        try:
            existing = self.get_run(name)
        except RunNotFound:
            existing = None
        if existing is None:
            try:
                with self.engine.begin() as conn:
                    run_id = conn.execute(insert(Run).values(
                        name=name, config=config, config_hash=config_hash, env=env, model=model, policy=policy,
                        prompt_format=prompt_format, total_episodes=len(tasks) * samples, created_at=utcnow(),
                        provenance=provenance,
                    ).returning(Run.id)).scalar_one()
                    rows = [{"run_id": run_id, "env": env, "split": split, "task_id": task_id, "sample": s,
                             "attempt": 0, "claims": 0, "status": "pending"}
                            for task_id, split in tasks for s in range(samples)]
                    for i in range(0, len(rows), 5000):
                        conn.execute(insert(Episode), rows[i : i + 5000])
                return self.get_run(name), True
            except IntegrityError:
                existing = self.get_run(name)
        if not resume:
            raise RunExists(f"run {name!r} already exists; pass --resume to continue it")
        if existing["config_hash"] != config_hash:
            raise ConfigMismatch(f"run {name!r} was created with config hash {existing['config_hash'][:12]}, "
                                 f"this job's is {config_hash[:12]}: resume needs the same job")
        if provenance is not None:
            stored = existing.get("provenance")
            if stored is None:  # a run of an older store: it adopts this job's provenance
                with self.engine.begin() as conn:
                    conn.execute(update(Run).where(Run.id == existing["id"]).values(provenance=provenance))
                existing["provenance"] = provenance
            elif changed := provenance_changes(stored, provenance):
                shown = "; ".join(f"{p}: {_show(_dig(stored, p))} -> {_show(_dig(provenance, p))}" for p in changed[:5])
                raise ConfigMismatch(f"run {name!r} was collected under a different provenance ({shown}"
                                     f"{'; ...' if len(changed) > 5 else ''}): resume needs the same env data, model, "
                                     f"prompts, tools and trajgym version; start a new run instead")
        return existing, False

    def list_runs(self) -> list[dict[str, Any]]:
        with self.engine.begin() as conn:
            runs = [dict(r) for r in conn.execute(select(Run).order_by(Run.id)).mappings()]
            counts = conn.execute(select(Episode.run_id, Episode.status, Episode.outcome, func.count())
                                  .group_by(Episode.run_id, Episode.status, Episode.outcome)).all()
        by_run: dict[int, dict[str, int]] = {}
        for run_id, status, outcome, n in counts:
            key = outcome if status == "done" else status
            by_run.setdefault(run_id, {})[key] = by_run.setdefault(run_id, {}).get(key, 0) + n
        for r in runs:
            r["counts"] = by_run.get(r["id"], {})
        return runs

    # ----- claims -------------------------------------------------------------------
    def requeue(self, run_id: int, *, infra_errors: bool = True) -> dict[str, int]:
        """Before resuming: claims of dead local workers and (optionally) infra errors go back to pending."""
        released = requeued = 0
        with self.engine.begin() as conn:
            workers = conn.execute(select(Episode.worker).where(Episode.run_id == run_id, Episode.status == "claimed")
                                   .distinct()).scalars().all()
            dead = [w for w in workers if w and worker_alive(w) is False]
            if dead:
                released = conn.execute(update(Episode).where(Episode.run_id == run_id, Episode.status == "claimed",
                                                              Episode.worker.in_(dead))
                                        .values(status="pending", worker=None, lease_until=None)).rowcount
            if infra_errors:
                requeued = conn.execute(update(Episode).where(Episode.run_id == run_id, Episode.status == "done",
                                                              Episode.outcome == "infra_error")
                                        .values(status="pending", outcome=None, worker=None, lease_until=None,
                                                error=None)).rowcount
        return {"released": released, "requeued": requeued}

    def claim(self, run_id: int, worker: str, n: int, lease_s: float) -> list[ClaimedEpisode]:
        now = utcnow()
        pick = (select(Episode.id)
                .where(Episode.run_id == run_id,
                       or_(Episode.status == "pending", and_(Episode.status == "claimed", Episode.lease_until < now)))
                .order_by(Episode.id).limit(n).with_for_update(skip_locked=True))
        stmt = (update(Episode).where(Episode.id.in_(pick.scalar_subquery()))
                .values(status="claimed", worker=worker, claims=Episode.claims + 1, claimed_at=now,
                        lease_until=now + timedelta(seconds=lease_s))
                .returning(Episode.id, Episode.task_id, Episode.split, Episode.sample, Episode.attempt))
        with self.engine.begin() as conn:
            rows = conn.execute(stmt).all()
        return sorted((ClaimedEpisode(*r) for r in rows), key=lambda c: c.id)

    def claims_elsewhere(self, run_id: int, exclude: Collection[int] = ()) -> tuple[int, datetime | None]:
        """Episodes of the run claimed now, other than `exclude` (the caller's own): how many, and the
        earliest end of their leases (a collector out of pending work waits for these: done, or taken over)."""
        with self.engine.begin() as conn:
            rows = conn.execute(select(Episode.id, Episode.lease_until)
                                .where(Episode.run_id == run_id, Episode.status == "claimed")).all()
        leases = [lease for eid, lease in rows if eid not in exclude]
        ends = [lease if lease is None or lease.tzinfo else lease.replace(tzinfo=UTC) for lease in leases]  # SQLite: naive UTC
        known = [end for end in ends if end is not None]
        return len(leases), (min(known) if known else None)

    def heartbeat(self, run_id: int, worker: str, lease_s: float) -> int:
        with self.engine.begin() as conn:
            return conn.execute(update(Episode).where(Episode.run_id == run_id, Episode.worker == worker,
                                                      Episode.status == "claimed")
                                .values(lease_until=utcnow() + timedelta(seconds=lease_s))).rowcount

    def release(self, episode_ids: Sequence[int], worker: str) -> int:
        if not episode_ids:
            return 0
        with self.engine.begin() as conn:
            return conn.execute(update(Episode).where(Episode.id.in_(list(episode_ids)), Episode.worker == worker,
                                                      Episode.status == "claimed")
                                .values(status="pending", worker=None, lease_until=None)).rowcount

    def commit(self, records: Sequence[EpisodeRecord], worker: str) -> list[int]:
        """Write finished episodes and their turns in one transaction. Returns the ids written
        (an episode whose claim this worker lost is skipped, never written twice)."""
        if not records:
            return []
        ids = [rec.episode_id for rec in records]
        with self.engine.begin() as conn:
            # Lock the rows this worker still holds; a claim lost to another worker is skipped.
            held = set(conn.execute(select(Episode.id).where(Episode.id.in_(ids), Episode.worker == worker,
                                                             Episode.status == "claimed").with_for_update()).scalars())
            mine = [rec for rec in records if rec.episode_id in held]
            if not mine:
                return []
            params = [{"eid": rec.episode_id, **{k: getattr(rec, k) for k in _EPISODE_FIELDS}} for rec in mine]
            conn.execute(update(Episode).where(Episode.id == bindparam("eid"))
                         .values(status="done", lease_until=None, **{k: bindparam(k) for k in _EPISODE_FIELDS}), params)
            self._turn_insert.execute(conn, ((rec.episode_id, idx, *_turn_values(t))
                                             for rec in mine for idx, t in enumerate(rec.messages)))
        return [rec.episode_id for rec in mine]

    # ----- reads --------------------------------------------------------------------
    def progress(self, run_id: int) -> dict[str, int]:
        with self.engine.begin() as conn:
            rows = conn.execute(select(Episode.status, Episode.outcome, func.count()).where(Episode.run_id == run_id)
                                .group_by(Episode.status, Episode.outcome)).all()
        out: dict[str, int] = {}
        for status, outcome, n in rows:
            key = outcome if status == "done" else status
            out[key] = out.get(key, 0) + n
        return out

    def episodes(self, run_id: int) -> list[dict[str, Any]]:
        with self.engine.begin() as conn:
            return [dict(r) for r in conn.execute(select(Episode).where(Episode.run_id == run_id)
                                                  .order_by(Episode.id)).mappings()]

    def turns(self, episode_id: int) -> list[dict[str, Any]]:
        with self.engine.begin() as conn:
            return [dict(r) for r in conn.execute(select(Turn).where(Turn.episode_id == episode_id)
                                                  .order_by(Turn.idx)).mappings()]
