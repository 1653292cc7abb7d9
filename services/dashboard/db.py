"""Read-only access to the trajectory store for the dashboard.

`ReadStore` is a `collector.store.Store` (so `collector.scoring` functions accept it)
whose engine only reads: on SQLite, `PRAGMA query_only` and plain deferred `BEGIN`
(a consistent WAL snapshot that never takes the write lock the collector needs); on
PostgreSQL, read-only transactions. It never migrates: a database the collector has
not written yet (no `episodes` table) reads as an empty store. Every call runs in a
worker thread (`ReadStore.run`) so the event loop never waits on the database.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import anyio
from sqlalchemy import Connection, Engine, create_engine, event, inspect
from sqlalchemy.engine import make_url

from collector.store.engine import normalize_url
from collector.store.repo import Store

T = TypeVar("T")


def make_read_engine(url: str) -> Engine:
    url = normalize_url(url)
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        engine = create_engine(url, connect_args={"timeout": 30.0, "check_same_thread": False})

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.isolation_level = None  # BEGIN is issued below
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA query_only=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        @event.listens_for(engine, "begin")
        def _on_begin(conn: Any) -> None:
            conn.exec_driver_sql("BEGIN")  # deferred: a read snapshot, never the write lock

        return engine
    engine = create_engine(url, pool_pre_ping=True, pool_size=4, max_overflow=4)

    @event.listens_for(engine, "connect")
    def _read_only(dbapi_conn: Any, _record: Any) -> None:
        cur = dbapi_conn.cursor()
        cur.execute("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY")
        cur.close()
        dbapi_conn.commit()

    return engine


class ReadStore(Store):
    """A `Store` that reads only (no migrations, no writes); its methods must run in threads."""

    def __init__(self, url: str) -> None:  # no super().__init__: that would migrate the database
        self.url = url
        self.engine = make_read_engine(url)
        self._has_tables = False

    def has_tables(self, conn: Connection) -> bool:
        """True once the collector has created its tables (cached after the first yes)."""
        if not self._has_tables:
            insp = inspect(conn)
            self._has_tables = all(insp.has_table(t) for t in ("runs", "episodes", "turns"))
        return self._has_tables

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """Call `fn(self, *args)` in a worker thread."""
        return await anyio.to_thread.run_sync(fn, self, *args)
