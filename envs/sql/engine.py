"""One session's sandboxed SQLite connection (it runs inside the session's worker process).

The template is a serialized database; the session deserializes it into its own
in-memory connection. On that connection: an authorizer denies ATTACH/DETACH
(which also blocks ``VACUUM INTO 'file'``), `load_extension` and every PRAGMA
outside a read-only allow-list; a watchdog thread calls `interrupt()` at the time
limit (SQLite checks it between VM instructions, so one long instruction, e.g.
`ltrim` on long operands, runs on: the parent kills the worker then, see
`envs.sql.worker`); values, LIKE patterns and SQL text have maximum lengths; the
database may grow by a bounded number of pages; temporary data stays in memory
and all of SQLite's memory is capped by a heap limit (process-wide, so it is set
only in a worker: `heap_limit=True`). Results are fetched in chunks up to a row
limit and a budget that counts every value. Every stop is a clear message.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable

from envs.sql.limits import (
    ExecResult,
    Snapshot,
    SqlLimitError,
    SqlLimits,
    fetch_limited,
    time_limit_message,
    too_large_message,
)
from envs.sql import mysql_compat
from envs.sql.statements import split_statements

# PRAGMAs an agent may run: read-only schema introspection.
ALLOWED_PRAGMAS = frozenset({
    "table_info", "table_xinfo", "table_list", "index_list", "index_info", "index_xinfo",
    "foreign_key_list", "collation_list", "function_list", "pragma_list",
})
DENIED_FUNCTIONS = frozenset({"load_extension", "fts3_tokenizer", "readfile", "writefile", "edit"})


class Watchdog:
    """Calls `stop()` once the armed deadline passes, from its own thread; `disarm()` ends the watch
    (after it returns, `stop()` is not called for that deadline)."""

    def __init__(self, stop: Callable[[], None]) -> None:
        self._stop = stop
        self._cond = threading.Condition()
        self._deadline: float | None = None
        self.fired = False
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="sql-watchdog", daemon=True)
        self._thread.start()

    def arm(self, seconds: float) -> None:
        with self._cond:
            self.fired = False
            self._deadline = time.monotonic() + seconds
            self._cond.notify()

    def disarm(self) -> None:
        with self._cond:
            self._deadline = None

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify()

    def _run(self) -> None:
        with self._cond:
            while not self._closed:
                if self._deadline is None:
                    self._cond.wait()
                    continue
                left = self._deadline - time.monotonic()
                if left > 0:
                    self._cond.wait(left)
                    continue
                self._deadline = None
                self.fired = True
                self._stop()


def decode_text(raw: bytes) -> str:
    """SQLite text as the Spider evaluator's connection reads it: invalid UTF-8 bytes dropped."""
    return raw.decode(errors="ignore")


class SqliteSession:
    """A private, limited SQLite connection. Used by one thread at a time."""

    def __init__(self, template: bytes, limits: SqlLimits, heap_limit: bool = False) -> None:
        self.limits = limits
        conn = sqlite3.connect(":memory:", check_same_thread=False, isolation_level=None)
        try:
            conn.deserialize(template)
            conn.text_factory = decode_text  # text read as the Spider evaluator reads it
            mysql_compat.register(conn)      # the DB-bench collation (MySQL 8's default, emulated)
            pages = int(conn.execute("PRAGMA page_count").fetchone()[0])
            page_size = int(conn.execute("PRAGMA page_size").fetchone()[0])
            growth = limits.max_growth_bytes // page_size
            conn.execute("PRAGMA temp_store = MEMORY")  # temp tables, sorting, DISTINCT: counted by the heap limit
            conn.execute(f"PRAGMA max_page_count = {pages + growth}")
            conn.execute(f"PRAGMA temp.max_page_count = {max(growth, 256)}")
            if heap_limit:
                conn.execute(f"PRAGMA hard_heap_limit = {len(template) + limits.max_memory_bytes}")
            conn.setlimit(sqlite3.SQLITE_LIMIT_ATTACHED, 0)
            conn.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, limits.max_value_bytes)
            conn.setlimit(sqlite3.SQLITE_LIMIT_LIKE_PATTERN_LENGTH, limits.max_like_pattern_bytes)
            conn.setlimit(sqlite3.SQLITE_LIMIT_SQL_LENGTH, max(limits.max_sql_chars * 4, 100_000))
            conn.set_authorizer(_authorize)
        except BaseException:
            conn.close()
            raise
        self.conn: sqlite3.Connection | None = conn
        self._watchdog = Watchdog(conn.interrupt)

    @property
    def closed(self) -> bool:
        return self.conn is None

    # ----- execute ----------------------------------------------------------------------
    def execute(self, sql: str) -> ExecResult:
        """Run one or more `;`-separated statements within the time limit; fetch the last result."""
        if self.conn is None:
            return ExecResult(error="the database of this session is closed")
        statements = split_statements(sql)
        if not statements:
            return ExecResult(error="no SQL statement given")
        result = ExecResult()
        self._watchdog.arm(self.limits.time_limit_s)
        try:
            for stmt in statements:
                result = self._run_one(stmt)
                result.statements = len(statements)
                if result.error:
                    break
        finally:
            self._watchdog.disarm()
        return result

    def _run_one(self, stmt: str) -> ExecResult:
        assert self.conn is not None
        cur = self.conn.cursor()
        try:
            cur.execute(stmt)
            if cur.description is None:
                return ExecResult(rowcount=cur.rowcount)
            columns = [d[0] for d in cur.description]
            rows, _, too_big = fetch_limited(cur, self.limits.max_rows, self.limits.max_result_bytes)
            if too_big:
                return ExecResult(error=too_large_message(self.limits))
            truncated = len(rows) > self.limits.max_rows
            return ExecResult(columns=columns, rows=rows[: self.limits.max_rows], truncated=truncated)
        except sqlite3.Error as err:
            return ExecResult(error=self._message(err))
        except MemoryError:
            return ExecResult(error=self._memory_message())
        except (OverflowError, ValueError) as err:
            return ExecResult(error=f"{type(err).__name__}: {err}")
        finally:
            cur.close()

    def _memory_message(self) -> str:
        return (f"out of memory: this session's database may use at most {self.limits.max_memory_bytes / 2**20:g} MiB "
                "beyond its initial size (the statement was rolled back)")

    def _message(self, err: sqlite3.Error) -> str:
        text = str(err)
        if self._watchdog.fired or text == "interrupted":
            return time_limit_message(self.limits)
        if text.startswith(("not authorized", "authorization denied")):
            return (f"{text} (sandbox: ATTACH/DETACH, VACUUM INTO, load_extension and PRAGMAs other than "
                    f"{', '.join(sorted(ALLOWED_PRAGMAS))} are not allowed)")
        if text == "string or blob too big":
            return f"{text}: strings and blobs are limited to {self.limits.max_value_bytes:,} bytes in this sandbox"
        if text == "LIKE or GLOB pattern too complex":
            return f"{text}: LIKE/GLOB patterns are limited to {self.limits.max_like_pattern_bytes:,} bytes in this sandbox"
        if text == "database or disk is full":
            return (f"database size limit reached: this session's database may grow by at most "
                    f"{self.limits.max_growth_bytes / 2**20:g} MiB")
        return text

    # ----- grading --------------------------------------------------------------------------
    def snapshot(self) -> Snapshot:
        """Every user table's columns and rows, as `envs.sql.reward.snapshot` reads them, within the time
        limit and the snapshot budget; `SqlLimitError` when a limit (or a failing table) stops it."""
        if self.conn is None:
            raise RuntimeError("the database of this session is closed")
        budget = self.limits.max_snapshot_bytes
        out: Snapshot = {}
        name = ""
        self._watchdog.arm(self.limits.time_limit_s)
        try:
            tables = [r[0] for r in self.conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name")]
            for name in tables:
                cur = self.conn.execute(f'SELECT * FROM "{name.replace(chr(34), chr(34) * 2)}"')
                columns = [d[0].lower() for d in cur.description]
                try:
                    rows, cost, too_big = fetch_limited(cur, 2**62, budget)
                finally:
                    cur.close()
                if too_big:
                    raise SqlLimitError(f"grading stopped: your tables hold more than {self.limits.max_snapshot_bytes:,} bytes "
                                        "of values (every value counts)")
                budget -= cost
                out[name.lower()] = (columns, rows)
        except sqlite3.Error as err:
            if self._watchdog.fired or str(err) == "interrupted":
                raise SqlLimitError(f"grading stopped: reading your tables took longer than the time limit of "
                                    f"{self.limits.time_limit_s:g} s") from None
            raise SqlLimitError(f"grading stopped: reading table {name!r} failed: {self._message(err)}") from None
        except MemoryError:
            raise SqlLimitError(f"grading stopped: {self._memory_message()}") from None
        finally:
            self._watchdog.disarm()
        return out

    def finish_transaction(self) -> None:
        """COMMIT an open transaction the agent began (autocommit mode otherwise)."""
        if self.conn is not None and self.conn.in_transaction:
            self.execute("COMMIT")

    def close(self) -> None:
        if self.conn is not None:
            conn, self.conn = self.conn, None
            self._watchdog.close()
            conn.close()


def _authorize(action: int, arg1: str | None, arg2: str | None, _db: str | None, _trigger: str | None) -> int:
    if action in (sqlite3.SQLITE_ATTACH, sqlite3.SQLITE_DETACH):
        return sqlite3.SQLITE_DENY
    if action == sqlite3.SQLITE_PRAGMA:
        return sqlite3.SQLITE_OK if (arg1 or "").lower() in ALLOWED_PRAGMAS else sqlite3.SQLITE_DENY
    if action == sqlite3.SQLITE_FUNCTION and (arg2 or "").lower() in DENIED_FUNCTIONS:
        return sqlite3.SQLITE_DENY
    return sqlite3.SQLITE_OK
