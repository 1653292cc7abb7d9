"""`HubStore`: the registry in SQL (SQLite or PostgreSQL by URL), synchronous — the app calls it in threads.

SQLite runs in WAL mode with `BEGIN IMMEDIATE` transactions (the collector may share the file).

Tables are created with `HubBase.metadata.create_all` (only the `hub_*` tables; the
collector's tables in the same database are left alone).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from store.connect import make_engine, normalize_url
from services.hub.models import EnvRow, HubBase, ReplicaRow, utcnow
from wire.hub_api import EnvRecord, Replica, ReplicaStatus


class NotFound(LookupError):
    pass


class Conflict(Exception):
    pass


@dataclass(frozen=True)
class ReplicaTarget:
    """What a health check needs to know about one replica."""

    id: int
    url: str
    env_name: str
    version: str
    status: str
    verified: bool
    failures: int


@dataclass(frozen=True)
class CheckResult:
    id: int
    ok: bool
    verified: bool
    sessions: int | None = None
    max_sessions: int | None = None
    error: str | None = None
    fatal: bool = False  # a wrong env behind the URL: down at once


def _aware(value: datetime) -> datetime:
    """SQLite hands datetimes back naive; they were written in UTC."""
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _replica(row: ReplicaRow) -> Replica:
    return Replica(id=row.id, url=row.url, status=ReplicaStatus(row.status), verified=row.verified, sessions=row.sessions,
                   max_sessions=row.max_sessions, failures=row.failures, last_error=row.last_error,
                   last_checked_at=row.last_checked_at, last_up_at=row.last_up_at, created_at=row.created_at)


def _record(row: EnvRow) -> EnvRecord:
    return EnvRecord(name=row.name, env_name=row.env_name, version=row.version, description=row.description, info=row.info,
                     meta=row.meta or {}, created_at=row.created_at, updated_at=row.updated_at,
                     replicas=[_replica(r) for r in row.replicas])


class HubStore:
    def __init__(self, url: str) -> None:
        self.url = normalize_url(url)
        self.engine = make_engine(self.url)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    def create_tables(self) -> None:
        HubBase.metadata.create_all(self.engine)

    def ping(self) -> None:
        with self.engine.connect() as conn:
            conn.execute(text("SELECT 1"))

    def dispose(self) -> None:
        self.engine.dispose()

    def _env(self, db: Session, name: str) -> EnvRow:
        row = db.scalars(select(EnvRow).where(EnvRow.name == name)).one_or_none()
        if row is None:
            raise NotFound(f"no env named {name!r} is registered")
        return row

    # ----- reads ------------------------------------------------------------------------
    def list_envs(self) -> list[EnvRecord]:
        with self._sessions() as db:
            return [_record(r) for r in db.scalars(select(EnvRow).order_by(EnvRow.name))]

    def get_env(self, name: str) -> EnvRecord:
        with self._sessions() as db:
            return _record(self._env(db, name))

    def targets(self) -> list[ReplicaTarget]:
        with self._sessions() as db:
            rows = db.execute(select(ReplicaRow, EnvRow.env_name, EnvRow.version).join(EnvRow)).all()
            return [ReplicaTarget(r.id, r.url, env_name, version, r.status, r.verified, r.failures) for r, env_name, version in rows]

    # ----- writes -----------------------------------------------------------------------
    def create_env(self, name: str, info: dict[str, Any], meta: dict[str, Any],
                   replicas: Sequence[tuple[str, CheckResult]], replace_stale: bool = False) -> EnvRecord:
        """Register `name`; taken: a `Conflict` — unless `replace_stale` and the registered env is another
        env or version with no replica up (what an upgraded service finds): then it is replaced."""
        with self._sessions() as db:
            old = db.scalars(select(EnvRow).where(EnvRow.name == name)).one_or_none()
            if old is not None and replace_stale:
                same = (old.env_name, old.version) == (info["name"], info["version"])
                if same or any(r.status == ReplicaStatus.up.value for r in old.replicas):
                    raise Conflict(f"an env named {name!r} is already registered")
                db.delete(old)
                db.flush()
            row = EnvRow(name=name, env_name=info["name"], version=info["version"], description=info.get("description", ""),
                         info=info, meta=meta)
            now = utcnow()
            for url, check in replicas:
                row.replicas.append(self._new_replica(url, check, now))
            db.add(row)
            try:
                db.commit()
            except IntegrityError as err:
                db.rollback()
                raise Conflict(f"an env named {name!r} is already registered") from err
            return _record(row)

    @staticmethod
    def _new_replica(url: str, check: CheckResult, now: datetime) -> ReplicaRow:
        return ReplicaRow(url=url, status=ReplicaStatus.up.value if check.ok else ReplicaStatus.down.value, verified=check.verified,
                          sessions=check.sessions, max_sessions=check.max_sessions, failures=0 if check.ok else 1,
                          last_error=check.error, last_checked_at=now, last_up_at=now if check.ok else None)

    def delete_env(self, name: str) -> None:
        with self._sessions() as db:
            db.delete(self._env(db, name))
            db.commit()

    def add_replica(self, name: str, url: str, check: CheckResult, replace: bool = False) -> Replica:
        """Add `url` with its probe result; an entry of the same URL is a `Conflict`, or with `replace`
        is replaced by a fresh entry (nothing of the old one's health record carries over)."""
        with self._sessions() as db:
            env = self._env(db, name)
            old = next((r for r in env.replicas if r.url == url), None)
            if old is not None:
                if not replace:
                    raise Conflict(f"{url} is already a replica of {name!r}")
                env.replicas.remove(old)
                db.flush()  # the unique (env, url) row goes before its replacement comes
            replica = self._new_replica(url, check, utcnow())
            env.replicas.append(replica)
            env.updated_at = utcnow()
            try:
                db.commit()
            except IntegrityError as err:  # a concurrent add of the same URL
                db.rollback()
                raise Conflict(f"{url} is already a replica of {name!r}") from err
            return _replica(replica)

    def remove_replica(self, name: str, replica_id: int) -> None:
        with self._sessions() as db:
            env = self._env(db, name)
            replica = next((r for r in env.replicas if r.id == replica_id), None)
            if replica is None:
                raise NotFound(f"env {name!r} has no replica {replica_id}")
            env.replicas.remove(replica)
            env.updated_at = utcnow()
            db.commit()

    def forget_health(self) -> int:
        """At hub start: every replica back to `unknown` and unverified, so that none is handed out
        before this hub has seen it healthy (and serving the registered env); returns how many."""
        with self._sessions() as db:
            rows = list(db.scalars(select(ReplicaRow)))
            for row in rows:
                row.status, row.verified, row.sessions = ReplicaStatus.unknown.value, False, None
            db.commit()
            return len(rows)

    def record_checks(self, results: Sequence[CheckResult], failures_before_down: int,
                      remove_after: float | None = None) -> list[tuple[str, str]]:
        """Apply one round of health checks: up on success, down after N consecutive failures (at once if
        fatal, or if this hub never saw it up). A replica down and not seen up for `remove_after` seconds
        (by its last success, whenever that was) is removed; returns the (env, url) pairs removed."""
        removed: list[tuple[str, str]] = []
        if not results:
            return removed
        now = utcnow()
        by_id = {r.id: r for r in results}
        with self._sessions() as db:
            for row in db.scalars(select(ReplicaRow).where(ReplicaRow.id.in_(by_id))):  # removed meanwhile: skipped
                res = by_id[row.id]
                row.last_checked_at = now
                if res.ok:
                    row.status, row.failures, row.last_error, row.last_up_at = ReplicaStatus.up.value, 0, None, now
                    row.sessions, row.max_sessions, row.verified = res.sessions, res.max_sessions, res.verified
                    continue
                row.failures += 1
                row.last_error = res.error
                if res.fatal or row.failures >= failures_before_down or row.status == ReplicaStatus.unknown.value:
                    row.status = ReplicaStatus.down.value
                if res.fatal:
                    row.verified = False
                if row.status == ReplicaStatus.down.value and remove_after is not None \
                        and (now - _aware(row.last_up_at or row.created_at)).total_seconds() >= remove_after:
                    removed.append((row.env.name, row.url))
                    db.delete(row)
            db.commit()
        return removed
