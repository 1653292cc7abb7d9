"""`AsyncStore`: the store's methods awaited from the event loop, run in one dedicated thread.

One thread (not a pool) keeps SQLite writers serial within a process and keeps the
event loop free of database I/O; the sync SQLAlchemy engine is used unchanged.

A lost database server (PostgreSQL restarted or failed over) does not end the run:
every store method is one transaction, so a call that failed on a dropped or refused
connection is retried with backoff for up to `reconnect_seconds`, on a fresh pooled
connection (pre-ping). A commit that did land before the connection dropped is
answered "already done" on retry (it is conditional on this worker's claim), so nothing
is stored twice. SQLite errors (disk full, read-only) are not retried: they fail fast.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from sqlalchemy.exc import DBAPIError, OperationalError

from store.connect import is_sqlite
from store.repo import Store

T = TypeVar("T")
log = logging.getLogger("trajgym.store")


class AsyncStore:
    def __init__(self, store: Store, reconnect_seconds: float = 120.0) -> None:
        self.store = store
        self.reconnect_seconds = reconnect_seconds
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="trajgym-store")

    def _lost_server(self, err: Exception) -> bool:
        if is_sqlite(self.store.engine):
            return False
        return isinstance(err, OperationalError) or (isinstance(err, DBAPIError) and err.connection_invalidated)

    async def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        loop = asyncio.get_running_loop()
        deadline = time.monotonic() + self.reconnect_seconds
        delay = 0.5
        while True:
            try:
                return await loop.run_in_executor(self._pool, functools.partial(fn, *args, **kwargs))
            except DBAPIError as err:
                if not self._lost_server(err) or time.monotonic() + delay > deadline:
                    raise
                log.warning("store unreachable (%s); retrying in %.1f s", type(err.orig).__name__, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    def __getattr__(self, name: str) -> Callable[..., Any]:
        method = getattr(self.store, name)

        async def bound(*args: Any, **kwargs: Any) -> Any:
            return await self.call(method, *args, **kwargs)

        return bound

    def shutdown(self) -> None:
        self._pool.shutdown(wait=True)
