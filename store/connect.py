"""Engine setup for the store: SQLite (WAL, one writer at a time) or PostgreSQL by URL.

SQLite connections run in driver autocommit and every SQLAlchemy transaction starts
with `BEGIN IMMEDIATE`, so a transaction holds the write lock from its first
statement: claims and commits from several processes serialise instead of failing
on lock upgrades. A bare path (no `://`) is taken as a SQLite file.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url


def normalize_url(url: str) -> str:
    """Accept a bare file path, `sqlite:///...`, `postgresql://...` (→ psycopg 3 driver)."""
    if "://" not in url:
        return f"sqlite:///{url}"
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def safe_url(url: str) -> str:
    """The store URL without its password (for storing and printing)."""
    return make_url(normalize_url(url)).render_as_string(hide_password=True)


def is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"


def make_engine(url: str, *, read_only: bool = False) -> Engine:
    """The one engine factory of every store user (collector, hub registry, dashboard).

    SQLite: WAL, foreign keys, a long busy timeout, and `BEGIN IMMEDIATE` so read-then-write
    transactions of several processes sharing the file wait instead of failing. `read_only`
    (the dashboard): `query_only`, deferred BEGIN (a read snapshot that never takes the write
    lock); on PostgreSQL, read-only transactions."""
    url = normalize_url(url)
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        engine = create_engine(url, connect_args={"timeout": 60.0, "check_same_thread": False})

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
            cur = dbapi_conn.cursor()
            if read_only:
                cur.execute("PRAGMA query_only=ON")
            elif parsed.database not in (None, "", ":memory:"):
                cur.execute("PRAGMA journal_mode=WAL")
                cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=60000")
            cur.close()

        @event.listens_for(engine, "begin")
        def _on_begin(conn: Any) -> None:
            conn.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")

        return engine
    engine = create_engine(url, pool_pre_ping=True, pool_size=4, max_overflow=4)
    if read_only:
        @event.listens_for(engine, "connect")
        def _read_only(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY")
            cur.close()
            dbapi_conn.commit()

    return engine
