"""One session's PostgreSQL connection, as its worker process runs it (see `envs.sql.worker`).

Each execute action is one transaction (BEGIN and COMMIT in it are no-ops, ROLLBACK
undoes the action's statements before it; no two-phase commit): the settings are set again
first (``statement_timeout``, ``lock_timeout``, ``idle_in_transaction_session_timeout``:
a role may change them, so an agent's ``SET`` lasts one action at most), the
agent's statements run (queries through a server-side cursor up to the row limit
and the result budget), a watchdog cancels the statement at the time limit
(PostgreSQL honours a cancel only at its interrupt checks: the service kills the
worker and terminates the backend when it does not stop), then, before the commit,
the session's storage is measured — every relation its role owns, temporary
tables included — and the action is rolled back when it is over the quota or
created large objects. Reading the tables for grading runs under the same time
limit and its own budget, base tables only (no views), and always rolls back.

Every query of ours on the session's connection names ``pg_catalog`` objects
explicitly under ``search_path = pg_catalog, pg_temp``, so that functions,
operators or tables an agent created cannot stand in for them.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

import psycopg
from psycopg import sql as pgsql

from envs.sql.engine import Watchdog
from envs.sql.limits import (
    ExecResult,
    Snapshot,
    SqlLimitError,
    SqlLimits,
    fetch_limited,
    time_limit_message,
    too_large_message,
)
from envs.sql.statements import split_statements, strip_literals

_QUERY_START = re.compile(r"^\s*\(*\s*(select|with|values|table)\b", re.IGNORECASE)
# Transaction control: each action is already one transaction, committed at its end (after the quota check).
_BEGIN_COMMIT = re.compile(r"^\s*(begin|start\s+transaction|commit|end)\b(?!\s+prepared)", re.IGNORECASE)
_ROLLBACK = re.compile(r"^\s*(rollback|abort)\b(?!\s+(to|prepared)\b)(?!\s+(work|transaction)\s+to\b)", re.IGNORECASE)
_SAVEPOINTS = re.compile(r"^\s*(savepoint|release|rollback\s+((work|transaction)\s+)?to)\b", re.IGNORECASE)
_TWO_PHASE = re.compile(r"^\s*(prepare\s+transaction|commit\s+prepared|rollback\s+prepared)\b", re.IGNORECASE)
_OURS = "SET LOCAL search_path = pg_catalog, pg_temp"
_STORAGE = ("SELECT COALESCE(SUM(pg_catalog.pg_total_relation_size(c.oid)), 0)::bigint, "
            "EXISTS (SELECT 1 FROM pg_catalog.pg_largeobject_metadata m WHERE m.lomowner = %(role)s::oid) "
            "FROM pg_catalog.pg_class c WHERE c.relowner = %(role)s::oid AND c.relkind IN ('r', 'm', 'S')")
_TABLES = ("SELECT c.relname, c.relkind FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
           "WHERE n.nspname = %s AND c.relkind IN ('r', 'p') ORDER BY c.relname")


def py_value(value: Any) -> Any:
    """PostgreSQL values as SQLite would give them: Decimal → int/float, dates and others → text."""
    if value is None or isinstance(value, (int, float, str)):
        return value
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() and abs(value) < 2**63 else float(value)
    if isinstance(value, (bytes, memoryview)):
        return bytes(value)
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return str(value)


def _rows(rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    return [tuple(py_value(v) for v in r) for r in rows]


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


class PgSession:
    """The worker's connection to a session's schema, through the session's own role."""

    def __init__(self, conninfo: str, role: str, role_oid: int, quota_bytes: int, limits: SqlLimits) -> None:
        self.role = role
        self.role_oid = role_oid
        self.quota_bytes = quota_bytes
        self.limits = limits
        self.conn: psycopg.Connection | None = psycopg.connect(conninfo, autocommit=False, connect_timeout=10)
        self.backend_pid = self.conn.info.backend_pid
        ms = int(limits.time_limit_s * 1000)
        self._settings = (f"SET statement_timeout = {ms}; SET lock_timeout = {ms}; "
                          f"SET idle_in_transaction_session_timeout = {max(10 * ms, 60_000)}")
        self._watchdog = Watchdog(self._cancel)

    def _cancel(self) -> None:
        if self.conn is not None:
            try:
                self.conn.cancel()
            except psycopg.Error:
                pass

    # ----- execute ----------------------------------------------------------------------
    def execute(self, sql: str) -> ExecResult:
        if self.conn is None:
            return ExecResult(error="the database of this session is closed")
        statements = split_statements(sql)
        if not statements:
            return ExecResult(error="no SQL statement given")
        conn = self.conn
        result = ExecResult()
        self._watchdog.arm(self.limits.time_limit_s)
        try:
            conn.execute(self._settings)
            for stmt in statements:
                result = self._run_one(stmt)
                result.statements = len(statements)
                if result.error:
                    break
            if result.error is None:
                result = self._within_quota(result)
        except psycopg.Error as err:
            result = ExecResult(error=_first_line(err))
        finally:
            self._watchdog.disarm()
        return self._end_action(result)

    def _end_action(self, result: ExecResult) -> ExecResult:
        assert self.conn is not None
        try:
            if result.error:
                self.conn.rollback()
            else:
                self.conn.commit()
        except psycopg.Error as err:
            result = ExecResult(error=_first_line(err))
            try:
                self.conn.rollback()
            except psycopg.Error:
                pass
        if self.conn.closed or self.conn.info.transaction_status == psycopg.pq.TransactionStatus.UNKNOWN:
            result.fatal = True  # the connection is gone (the server ended it)
        elif result.error:
            result = self._still_over_quota(result)
        if result.error and (self._watchdog.fired or "statement timeout" in result.error):
            result.error = time_limit_message(self.limits)
        return result

    def _run_one(self, stmt: str) -> ExecResult:
        assert self.conn is not None
        bare = strip_literals(stmt)
        if _TWO_PHASE.match(bare):
            return ExecResult(error="two-phase commit is not allowed in this sandbox")
        if _BEGIN_COMMIT.match(bare):
            return ExecResult()  # OK: the action is one transaction, committed when it succeeds
        if _ROLLBACK.match(bare):
            self.conn.rollback()  # this action's statements so far
            self.conn.execute(self._settings)
            return ExecResult()
        if _SAVEPOINTS.match(bare):
            try:
                self.conn.execute(stmt)
                return ExecResult()
            except psycopg.Error as err:
                return ExecResult(error=_first_line(err))
        is_query = _QUERY_START.match(bare) is not None
        try:
            with self.conn.transaction():  # a savepoint per statement: an error undoes that statement
                with self.conn.cursor(name="q") if is_query else self.conn.cursor() as cur:
                    cur.execute(stmt)
                    if cur.description is None:
                        return ExecResult(rowcount=cur.rowcount)
                    columns = [d.name for d in cur.description]
                    rows, _, too_big = fetch_limited(cur, self.limits.max_rows, self.limits.max_result_bytes)
                if too_big:
                    return ExecResult(error=too_large_message(self.limits))
                return ExecResult(columns=columns, rows=_rows(rows[: self.limits.max_rows]),
                                  truncated=len(rows) > self.limits.max_rows)
        except psycopg.Error as err:
            return ExecResult(error=_first_line(err))

    def storage(self) -> tuple[int, bool]:
        """(bytes of every relation the role owns, whether it owns large objects), inside the current transaction."""
        assert self.conn is not None
        with self.conn.cursor() as cur:
            cur.execute(_OURS)
            cur.execute(_STORAGE, {"role": self.role_oid})
            row = cur.fetchone()
        assert row is not None
        return int(row[0]), bool(row[1])

    def _within_quota(self, result: ExecResult) -> ExecResult:
        size, large_objects = self.storage()
        if large_objects:
            return ExecResult(error="large objects are not allowed in this sandbox (the action was rolled back)")
        if size > self.quota_bytes:
            growth = self.limits.max_growth_bytes / 2**20
            return ExecResult(error=f"database size limit reached: this session's tables may grow by at most {growth:g} MiB "
                                    "(the action was rolled back)")
        return result

    def _still_over_quota(self, result: ExecResult) -> ExecResult:
        """After a rollback: storage still over the quota (the agent committed itself, or rolled-back rows left
        the tables' files larger) ends the episode."""
        assert self.conn is not None
        try:
            size, large_objects = self.storage()
            self.conn.rollback()
        except psycopg.Error:
            return result
        if size > self.quota_bytes or large_objects:
            what = "large objects" if large_objects else f"more than {self.limits.max_growth_bytes / 2**20:g} MiB of growth"
            return ExecResult(error=f"database size limit reached: this session's storage holds {what} even after the rollback; "
                                    "the session's schema is discarded and the episode ends", fatal=True)
        return result

    # ----- grading ----------------------------------------------------------------------------
    def snapshot(self) -> Snapshot:
        """Every base table of the session's schema (columns, rows), within the time limit and the snapshot
        budget; always rolled back. `SqlLimitError` when a limit or a failing table stops it."""
        if self.conn is None:
            raise RuntimeError("the database of this session is closed")
        conn = self.conn
        budget = self.limits.max_snapshot_bytes
        out: Snapshot = {}
        name = ""
        self._watchdog.arm(self.limits.time_limit_s)
        try:
            conn.rollback()
            with conn.cursor() as cur:
                cur.execute(self._settings)
                cur.execute(_OURS)
                cur.execute(_TABLES, (self.role,))
                tables = cur.fetchall()
            for name, kind in tables:
                only = pgsql.SQL("ONLY ") if kind == "r" else pgsql.SQL("")
                with conn.cursor(name="snap") as cur:
                    cur.execute(pgsql.SQL("SELECT * FROM {}{}").format(only, pgsql.Identifier(self.role, name)))
                    columns = [d.name.lower() for d in cur.description or []]
                    rows, cost, too_big = fetch_limited(cur, 2**62, budget)
                if too_big:
                    raise SqlLimitError(f"grading stopped: your tables hold more than {self.limits.max_snapshot_bytes:,} bytes "
                                        "of values (every value counts)")
                budget -= cost
                out[name.lower()] = (columns, _rows(rows))
        except psycopg.Error as err:
            if self._watchdog.fired or isinstance(err, psycopg.errors.QueryCanceled):
                raise SqlLimitError(f"grading stopped: reading your tables took longer than the time limit of "
                                    f"{self.limits.time_limit_s:g} s") from None
            raise SqlLimitError(f"grading stopped: reading table {name!r} failed: {_first_line(err)}") from None
        finally:
            self._watchdog.disarm()
            try:
                conn.rollback()
            except psycopg.Error:
                pass
        return out

    def finish_transaction(self) -> None:
        """Every execute action is committed already."""

    def close(self) -> None:
        if self.conn is not None:
            conn, self.conn = self.conn, None
            self._watchdog.close()
            conn.close()
