"""One session's private SQLite database: a copy of a template, sandboxed, in its own worker process.

`SandboxDb` is the service's handle on it: the copy and every statement live in a
worker process (`envs.sql.worker`) running an `envs.sql.engine.SqliteSession`
(authorizer, SQLite limits, heap limit, interrupt at the time limit); the service
kills the worker when a statement overruns the time limit by `kill_grace_s`
(SQLite cannot interrupt one long instruction), and the episode then ends. The
limits and result shapes shared with the PostgreSQL backend are in
`envs.sql.limits` (re-exported here).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from envs.sql.engine import ALLOWED_PRAGMAS, DENIED_FUNCTIONS, SqliteSession
from envs.sql.limits import (
    ExecResult,
    SessionDb,
    SqlLimitError,
    SqlLimits,
    fetch_limited,
    value_cost,
)
from envs.sql.worker import WorkerDb

__all__ = ["ALLOWED_PRAGMAS", "DENIED_FUNCTIONS", "ExecResult", "SandboxDb", "SessionDb", "SqlLimitError", "SqlLimits",
           "fetch_limited", "open_trusted", "serialize_file", "value_cost"]


class SandboxDb(WorkerDb):
    """A session's SQLite copy of `template`, in its own worker process (see `envs.sql.worker`)."""

    def __init__(self, template: bytes, limits: SqlLimits) -> None:
        super().__init__(limits, ("open_sqlite", template, limits.model_dump_json()),
                         open_timeout=max(30.0, 10 * limits.kill_after_s))


def open_trusted(template: bytes, limits: SqlLimits) -> SessionDb:
    """A copy of `template` in this process, for trusted SQL only (a dataset's gold statements, when grading):
    no worker to start, the sandbox as for a session but generous time and snapshot limits."""
    return SqliteSession(template, limits.model_copy(update={"time_limit_s": max(limits.time_limit_s, 60.0),
                                                             "max_snapshot_bytes": 2**62}))


def serialize_file(path: str | Path) -> bytes:
    """Read a SQLite file (read-only) into serialized bytes, via the backup API."""
    src = sqlite3.connect(Path(path).resolve().as_uri() + "?mode=ro", uri=True)
    mem = sqlite3.connect(":memory:")
    try:
        src.backup(mem)
        return mem.serialize()
    finally:
        src.close()
        mem.close()
