"""One session's private SQLite database: a copy of a template with the sandbox applied.

The template is a serialized database (bytes, shared read-only); each session
deserializes it into its own in-memory connection. On that connection: an
authorizer denies ATTACH/DETACH (which also blocks ``VACUUM INTO 'file'``),
`load_extension` and every PRAGMA outside a read-only allow-list; a progress
handler stops a statement after a wall-clock time limit; results are fetched
with `fetchmany` up to a row limit and a byte budget; string/blob values have a
maximum length; the database may only grow by a bounded number of bytes (pages).
Every stop comes back as a clear message, never an exception.
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from pydantic import BaseModel, Field

from envs.sql.reward import Snapshot, snapshot
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
    max_growth_bytes: int = Field(default=16 * 2**20, ge=0, description="bytes the database (and its temp store) may grow by")
    max_value_bytes: int = Field(default=1_000_000, ge=1_000, description="largest string or blob value")
    max_result_bytes: int = Field(default=16_000_000, ge=10_000, description="text/blob bytes fetched from one query")
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


class SessionDb(Protocol):
    """What the env needs from a session's database, whatever the backend."""

    def execute(self, sql: str) -> ExecResult: ...

    def snapshot(self) -> Snapshot: ...

    def finish_transaction(self) -> None: ...

    def close(self) -> None: ...


class SandboxDb:
    """A private, limited SQLite connection. Used by one thread at a time."""

    def __init__(self, template: bytes, limits: SqlLimits) -> None:
        self.limits = limits
        self._deadline = float("inf")
        self._timed_out = False
        conn = sqlite3.connect(":memory:", check_same_thread=False, isolation_level=None)
        try:
            conn.deserialize(template)
            pages = int(conn.execute("PRAGMA page_count").fetchone()[0])
            page_size = int(conn.execute("PRAGMA page_size").fetchone()[0])
            growth = limits.max_growth_bytes // page_size
            conn.execute(f"PRAGMA max_page_count = {pages + growth}")
            conn.execute(f"PRAGMA temp.max_page_count = {max(growth, 256)}")
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
            rows, too_big = fetch_limited(cur, self.limits)
            if too_big:
                return ExecResult(error=f"result too large: the query returns more than {self.limits.max_result_bytes:,} bytes "
                                        "of text; select fewer rows or columns")
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
        if text.startswith(("not authorized", "authorization denied")):
            return (f"{text} (sandbox: ATTACH/DETACH, VACUUM INTO, load_extension and PRAGMAs other than "
                    f"{', '.join(sorted(ALLOWED_PRAGMAS))} are not allowed)")
        if text == "string or blob too big":
            return f"{text}: strings and blobs are limited to {self.limits.max_value_bytes:,} bytes in this sandbox"
        if text == "database or disk is full":
            return (f"database size limit reached: this session's database may grow by at most "
                    f"{self.limits.max_growth_bytes / 2**20:g} MiB")
        return text

    def snapshot(self) -> Snapshot:
        """Every user table's columns and rows (for grading data changes)."""
        if self.conn is None:
            raise RuntimeError("the database of this session is closed")
        return snapshot(self.conn)

    def finish_transaction(self) -> None:
        """COMMIT an open transaction the agent began (autocommit mode otherwise)."""
        if self.conn is not None and self.conn.in_transaction:
            self.execute("COMMIT")

    def close(self) -> None:
        if self.conn is not None:
            conn, self.conn = self.conn, None
            conn.close()


def fetch_limited(cur: Any, limits: SqlLimits, chunk: int = 256) -> tuple[list[tuple[Any, ...]], bool]:
    """Up to `max_rows + 1` rows, fetched in chunks; stops (True) once text/blob values exceed `max_result_bytes`."""
    rows: list[tuple[Any, ...]] = []
    size = 0
    while len(rows) <= limits.max_rows:
        part = cur.fetchmany(min(chunk, limits.max_rows + 1 - len(rows)))
        if not part:
            break
        rows.extend(part)
        size += sum(len(v) for r in part for v in r if isinstance(v, (str, bytes)))
        if size > limits.max_result_bytes:
            return rows, True
    return rows, False


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
