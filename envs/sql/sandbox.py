"""One session's private SQLite database: a copy of a template with the sandbox applied.

The template is a serialized database (bytes, shared read-only); each session
deserializes it into its own in-memory connection. On that connection: an
authorizer denies ATTACH/DETACH (which also blocks ``VACUUM INTO 'file'``),
`load_extension` and every PRAGMA outside a read-only allow-list; a progress
handler stops a statement after a wall-clock time limit; results are fetched
with `fetchmany` up to a row limit; the database may only grow by a bounded
number of pages. Every stop comes back as a clear message, never an exception.
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from envs.sql.statements import split_statements

# PRAGMAs an agent may run: read-only schema introspection.
ALLOWED_PRAGMAS = frozenset({
    "table_info", "table_xinfo", "table_list", "index_list", "index_info", "index_xinfo",
    "foreign_key_list", "collation_list", "function_list", "pragma_list",
})
DENIED_FUNCTIONS = frozenset({"load_extension", "fts3_tokenizer", "readfile", "writefile", "edit"})

_PROGRESS_EVERY = 2_000  # VM instructions between two time checks


class SqlLimits(BaseModel):
    """Per-statement and per-database limits of a session."""

    time_limit_s: float = Field(default=3.0, gt=0, description="wall-clock seconds per execute action")
    max_rows: int = Field(default=10_000, ge=1, description="rows fetched from one query; more are cut off")
    max_growth_pages: int = Field(default=4_096, ge=0, description="pages the database may grow by (4 KiB each)")
    max_value_bytes: int = Field(default=10_000_000, ge=1_000, description="largest string or blob value")
    max_sql_chars: int = Field(default=20_000, ge=100)


@dataclass
class ExecResult:
    """Outcome of one execute action (possibly several statements; the last one's result)."""

    columns: list[str] | None = None  # None: the last statement returned no result set
    rows: list[tuple[Any, ...]] = field(default_factory=list)
    rowcount: int = -1
    truncated: bool = False
    error: str | None = None
    statements: int = 0


class TimeLimitExceeded(Exception):
    pass


class SandboxDb:
    """A private, limited SQLite connection. Used by one thread at a time."""

    def __init__(self, template: bytes, limits: SqlLimits) -> None:
        self.limits = limits
        self._deadline = float("inf")
        self._timed_out = False
        conn = sqlite3.connect(":memory:", check_same_thread=False, isolation_level=None)
        try:
            conn.deserialize(template)
            pages = conn.execute("PRAGMA page_count").fetchone()[0]
            conn.execute(f"PRAGMA max_page_count = {int(pages) + limits.max_growth_pages}")
            conn.execute(f"PRAGMA temp.max_page_count = {max(limits.max_growth_pages, 256)}")
            conn.setlimit(sqlite3.SQLITE_LIMIT_ATTACHED, 0)
            conn.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, limits.max_value_bytes)
            conn.setlimit(sqlite3.SQLITE_LIMIT_SQL_LENGTH, max(limits.max_sql_chars * 4, 100_000))
            conn.set_authorizer(_authorize)
            conn.set_progress_handler(self._progress, _PROGRESS_EVERY)
        except BaseException:
            conn.close()
            raise
        self.conn: sqlite3.Connection | None = conn

    # ----- sandbox hooks ------------------------------------------------------------
    def _progress(self) -> int:
        if time.monotonic() > self._deadline:
            self._timed_out = True
            return 1  # interrupts the statement
        return 0

    # ----- use ------------------------------------------------------------------------
    @property
    def closed(self) -> bool:
        return self.conn is None

    def execute(self, sql: str) -> ExecResult:
        """Run one or more `;`-separated statements within the time limit; fetch the last result."""
        if self.conn is None:
            return ExecResult(error="the database of this session is closed")
        statements = split_statements(sql)
        if not statements:
            return ExecResult(error="no SQL statement given")
        result = ExecResult()
        self._timed_out = False
        self._deadline = time.monotonic() + self.limits.time_limit_s
        try:
            for stmt in statements:
                result = self._run_one(stmt)
                result.statements = len(statements)
                if result.error:
                    break
        finally:
            self._deadline = float("inf")
        return result

    def _run_one(self, stmt: str) -> ExecResult:
        assert self.conn is not None
        cur = self.conn.cursor()
        try:
            cur.execute(stmt)
            if cur.description is None:
                return ExecResult(rowcount=cur.rowcount)
            columns = [d[0] for d in cur.description]
            rows = cur.fetchmany(self.limits.max_rows + 1)
            truncated = len(rows) > self.limits.max_rows
            return ExecResult(columns=columns, rows=rows[: self.limits.max_rows], truncated=truncated)
        except sqlite3.Error as err:
            return ExecResult(error=self._message(err))
        except (OverflowError, ValueError, MemoryError) as err:
            return ExecResult(error=f"{type(err).__name__}: {err}")
        finally:
            cur.close()

    def _message(self, err: sqlite3.Error) -> str:
        text = str(err)
        if self._timed_out or text == "interrupted":
            return (f"query stopped: it ran longer than the time limit of {self.limits.time_limit_s:g} s "
                    "(the database is unchanged by the stopped statement)")
        if text == "not authorized":
            return ("not authorized: ATTACH/DETACH, load_extension and PRAGMAs other than "
                    f"{', '.join(sorted(ALLOWED_PRAGMAS))} are not allowed in this sandbox")
        if text == "database or disk is full":
            return (f"database size limit reached: this session's database may grow by at most "
                    f"{self.limits.max_growth_pages} pages ({self.limits.max_growth_pages * 4 // 1024} MiB)")
        return text

    def finish_transaction(self) -> None:
        """COMMIT an open transaction the agent began (autocommit mode otherwise)."""
        if self.conn is not None and self.conn.in_transaction:
            self.execute("COMMIT")

    def close(self) -> None:
        if self.conn is not None:
            conn, self.conn = self.conn, None
            conn.close()


def _authorize(action: int, arg1: str | None, arg2: str | None, _db: str | None, _trigger: str | None) -> int:
    if action in (sqlite3.SQLITE_ATTACH, sqlite3.SQLITE_DETACH):
        return sqlite3.SQLITE_DENY
    if action == sqlite3.SQLITE_PRAGMA:
        return sqlite3.SQLITE_OK if (arg1 or "").lower() in ALLOWED_PRAGMAS else sqlite3.SQLITE_DENY
    if action == sqlite3.SQLITE_FUNCTION and (arg2 or "").lower() in DENIED_FUNCTIONS:
        return sqlite3.SQLITE_DENY
    return sqlite3.SQLITE_OK


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
