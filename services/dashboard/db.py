"""Read-only access to the trajectory store for the dashboard.

`ReadStore` is a `store.Store` (so `store.scoring` functions accept it)
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
from sqlalchemy import Connection, inspect

from store.connect import make_engine
from store.repo import Store

T = TypeVar("T")


class ReadStore(Store):
    """A `Store` that reads only (no migrations, no writes); its methods must run in threads."""

    def __init__(self, url: str) -> None:  # no super().__init__: that would migrate the database
        self.url = url
        self.engine = make_engine(url, read_only=True)
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
