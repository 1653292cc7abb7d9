"""PostgreSQL backend: the same tasks on a PostgreSQL server, one schema and one role per session.

Each database template (a serialized SQLite database) is read once into memory;
column types are inferred from the stored values (bigint, double precision or
text), primary keys are kept. A session gets a fresh login role without
privileges (no superuser, no file-access roles, no CREATE on the database) and
a schema it owns, filled with the template's tables by COPY; its connection's
`search_path` is that schema. Other sessions' schemas are not readable by it
(their names are visible in the catalogs, as always in PostgreSQL). A statement is stopped by `statement_timeout`
and, since a role can change that setting, by a client-side cancel at the same
time limit. Queries are read through a server-side cursor up to the row limit.
Each statement is committed when it succeeds (as in SQLite's autocommit mode).

Serve it with ``trajgym serve envs.sql.postgres:SqlPostgresEnv``; the server is
``TRAJGYM_SQL_PG_DSN`` (default ``host=127.0.0.1 port=5432 user=postgres dbname=test``,
a role that may create roles and schemas).
"""

from __future__ import annotations

import atexit
import os
import re
import sqlite3
import threading
import uuid
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql as pgsql

from envs.sql import render
from envs.sql.data import DbTemplate, SqlData, load_builtin, load_dir
from envs.sql.env import SqlEnv, make_tools
from envs.sql.render import show_ident
from envs.sql.reward import Snapshot
from envs.sql.sandbox import ExecResult, SqlLimits, fetch_limited
from envs.sql.statements import split_statements, strip_literals

DEFAULT_DSN = "host=127.0.0.1 port=5432 user=postgres dbname=test"
_QUERY_START = re.compile(r"^\s*\(*\s*(select|with|values|table)\b", re.IGNORECASE)
_SAFE_PG_TYPE = {"bigint", "double precision", "text"}
_PLAIN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class PgTable:
    name: str
    columns: list[tuple[str, str]]  # (name, PostgreSQL type)
    primary_key: list[str]


def pg_name(name: str) -> str:
    """PostgreSQL folds unquoted names to lower case: store plain names lower-cased so `Year` and `year` both work."""
    return name.lower() if _PLAIN.match(name) else name


def _infer_type(declared: str, values: list[Any]) -> str:
    present = [v for v in values if v is not None]
    if present:
        if all(isinstance(v, int) and -(2**63) <= v < 2**63 for v in present):
            return "bigint"
        if all(isinstance(v, (int, float)) for v in present):
            return "double precision"
        return "text"
    upper = declared.upper()
    if "INT" in upper:
        return "bigint"
    if any(t in upper for t in ("REAL", "FLOA", "DOUB")):
        return "double precision"
    return "text"


def read_template(template: DbTemplate) -> list[tuple[PgTable, list[tuple[Any, ...]]]]:
    """Tables of a SQLite template with inferred PostgreSQL column types, and their rows."""
    conn = sqlite3.connect(":memory:")
    conn.deserialize(template.data)
    out = []
    try:
        names = [r[0] for r in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name")]
        for name in names:
            q = '"' + name.replace('"', '""') + '"'
            info = conn.execute(f"PRAGMA table_info({q})").fetchall()
            rows = conn.execute(f"SELECT * FROM {q}").fetchall()
            columns = [(pg_name(c[1]), _infer_type(c[2] or "", [r[i] for r in rows])) for i, c in enumerate(info)]
            pk = [c[1] for c in sorted(info, key=lambda c: c[5]) if c[5]]
            pk_index = [[c[1] for c in info].index(k) for k in pk]
            pk = [pg_name(k) for k in pk]
            keys = [tuple(r[i] for i in pk_index) for r in rows]
            if len(set(keys)) != len(keys) or any(None in k for k in keys):
                pk = []  # SQLite lets duplicate or NULL keys through where PostgreSQL would not
            out.append((PgTable(pg_name(name), columns, pk), [tuple(_pg_value(v, t) for v, (_, t) in zip(r, columns)) for r in rows]))
    finally:
        conn.close()
    return out


def _pg_value(value: Any, pg_type: str) -> Any:
    if value is None:
        return None
    if pg_type == "text":
        return value.hex() if isinstance(value, bytes) else str(value)
    return value


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


def mysql_to_postgres(statement: str) -> str:
    """Adapt a MySQL/SQLite-style gold statement: `name` → "name", and a quoted plain name
    ("Year") lower-cased to match the lower-cased columns (`pg_name`). String literals are kept."""
    out: list[str] = []
    i, n = 0, len(statement)
    while i < n:
        ch = statement[i]
        if ch == "'":
            j = i + 1
            while j < n and not (statement[j] == "'" and (j + 1 >= n or statement[j + 1] != "'")):
                j += 2 if statement[j] == "'" else 1
            out.append(statement[i:j + 1])
            i = j + 1
        elif ch in "`\"":
            j = statement.find(ch, i + 1)
            j = n if j == -1 else j
            name = statement[i + 1:j]
            out.append('"' + pg_name(name).replace('"', '""') + '"')
            i = j + 1
        else:
            out.append(ch)
            i += 1
    return "".join(out)


class PostgresBackend:
    """One role + schema per session, filled from the template's rows (cached in memory). Thread-safe.

    Nothing is left on the server but open sessions' roles and schemas, which `close()` of the
    session (or of the backend) drops; after a crash, `drop_stale` removes them."""

    name = "postgres"

    def __init__(self, dsn: str = DEFAULT_DSN, prefix: str = "trajgym_sql") -> None:
        self.dsn = dsn
        self.tag = f"{prefix}_{uuid.uuid4().hex[:8]}"
        self._admin = psycopg.connect(dsn, autocommit=True)
        self._lock = threading.Lock()
        self._templates: dict[str, list[tuple[PgTable, list[tuple[Any, ...]]]]] = {}
        self._sessions: dict[str, PgSandbox] = {}
        self._closed = False
        atexit.register(self.close)

    def open(self, key: str, template: DbTemplate, limits: SqlLimits) -> PgSandbox:
        with self._lock:
            if self._closed:
                raise RuntimeError("the PostgreSQL backend is closed")
            tables = self._templates.get(key)
            if tables is None:
                tables = self._templates[key] = read_template(template)
            role = f"{self.tag}_s{uuid.uuid4().hex[:12]}"
            r = pgsql.Identifier(role)
            timeout_ms = int(limits.time_limit_s * 1000)
            with self._admin.transaction():
                self._admin.execute(pgsql.SQL("CREATE ROLE {} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT "
                                              "CONNECTION LIMIT 2").format(r))
                self._admin.execute(pgsql.SQL("CREATE SCHEMA {} AUTHORIZATION {}").format(r, r))
                for setting, value in (("search_path", role), ("statement_timeout", str(timeout_ms)),
                                       ("temp_file_limit", f"{max(limits.max_growth_bytes // 1024, 1024)}kB")):
                    self._admin.execute(pgsql.SQL("ALTER ROLE {} SET {} = {}").format(r, pgsql.Identifier(setting), pgsql.Literal(value)))
                self._admin.execute(pgsql.SQL("SET LOCAL ROLE {}").format(r))  # the tables belong to the session's role
                for table, rows in tables:
                    ident = pgsql.Identifier(role, table.name)
                    cols = [pgsql.SQL("{} {}").format(pgsql.Identifier(c), pgsql.SQL(t)) for c, t in table.columns if t in _SAFE_PG_TYPE]
                    if table.primary_key:
                        cols.append(pgsql.SQL("PRIMARY KEY ({})").format(pgsql.SQL(", ").join(map(pgsql.Identifier, table.primary_key))))
                    self._admin.execute(pgsql.SQL("CREATE TABLE {} ({})").format(ident, pgsql.SQL(", ").join(cols)))
                    with self._admin.cursor().copy(pgsql.SQL("COPY {} FROM STDIN").format(ident)) as copy:
                        for row in rows:
                            copy.write_row(row)
        try:
            conn = psycopg.connect(psycopg.conninfo.make_conninfo(self.dsn, user=role), autocommit=False)
        except BaseException:
            self.drop(role)
            raise
        sandbox = PgSandbox(self, role, conn, limits)
        with self._lock:
            self._sessions[role] = sandbox
        return sandbox

    def describe(self, key: str, template: DbTemplate) -> str:
        """Schema text with PostgreSQL names (plain names lower-cased) and the inferred types."""
        with self._lock:
            tables = self._templates.get(key)
            if tables is None:
                tables = self._templates[key] = read_template(template)
        parts = []
        for table, rows in tables:
            cols = ", ".join(f"{show_ident(c)} {t}" for c, t in table.columns)
            if table.primary_key:
                cols += f", PRIMARY KEY ({', '.join(show_ident(k) for k in table.primary_key)})"
            text = f"Table {show_ident(table.name)} ({len(rows)} rows): {cols}"
            if rows:
                sample = render.table([c for c, _ in table.columns], rows[:3])
                text += "\n  sample rows:\n" + "\n".join("  " + ln for ln in sample.splitlines())
            parts.append(text)
        return "\n\n".join(parts)

    def drop(self, role: str) -> None:
        with self._lock:
            self._sessions.pop(role, None)
            if self._closed:
                return
            r = pgsql.Identifier(role)
            self._admin.execute(pgsql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(r))
            self._admin.execute(pgsql.SQL("DROP ROLE IF EXISTS {}").format(r))

    def close(self) -> None:
        """Drop every session still open. Idempotent."""
        with self._lock:
            open_sessions = list(self._sessions.values())
        for sandbox in open_sessions:
            sandbox.close()
        with self._lock:
            if not self._closed:
                self._closed = True
                self._admin.close()


def drop_stale(dsn: str = DEFAULT_DSN, prefix: str = "trajgym_sql") -> int:
    """Drop every role and schema named `prefix*` (left by a killed service). Run it only when no
    service using `prefix` is alive. Returns the number of roles dropped."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        pattern = prefix.replace("_", r"\_") + "%"
        for (name,) in conn.execute("SELECT nspname FROM pg_namespace WHERE nspname LIKE %s", (pattern,)).fetchall():
            conn.execute(pgsql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(pgsql.Identifier(name)))
        roles = [r for (r,) in conn.execute("SELECT rolname FROM pg_roles WHERE rolname LIKE %s", (pattern,)).fetchall()]
        for role in roles:
            conn.execute(pgsql.SQL("DROP ROLE IF EXISTS {}").format(pgsql.Identifier(role)))
        return len(roles)


class PgSandbox:
    """One session's schema on the server, reached through its own unprivileged role."""

    def __init__(self, backend: PostgresBackend, role: str, conn: psycopg.Connection, limits: SqlLimits) -> None:
        self.backend = backend
        self.role = role
        self.conn: psycopg.Connection | None = conn
        self.limits = limits

    def execute(self, sql: str) -> ExecResult:
        if self.conn is None:
            return ExecResult(error="the database of this session is closed")
        statements = split_statements(sql)
        if not statements:
            return ExecResult(error="no SQL statement given")
        conn = self.conn
        timed_out = threading.Event()

        def cancel() -> None:
            timed_out.set()
            conn.cancel()

        timer = threading.Timer(self.limits.time_limit_s, cancel)
        timer.start()
        result = ExecResult()
        try:
            for stmt in statements:
                result = self._run_one(stmt)
                result.statements = len(statements)
                if result.error:
                    break
        finally:
            timer.cancel()
        try:
            if result.error:
                conn.rollback()
            else:
                conn.commit()
        except psycopg.Error as err:
            conn.rollback()
            result = ExecResult(error=str(err).strip())
        if result.error and (timed_out.is_set() or "statement timeout" in result.error):
            result.error = (f"query stopped: it ran longer than the time limit of {self.limits.time_limit_s:g} s "
                            "(the stopped statement's changes were rolled back)")
        return result

    def _run_one(self, stmt: str) -> ExecResult:
        assert self.conn is not None
        is_query = _QUERY_START.match(strip_literals(stmt)) is not None
        try:
            with self.conn.transaction():  # one transaction per statement: committed on success, else rolled back
                with self.conn.cursor(name="q") if is_query else self.conn.cursor() as cur:
                    cur.execute(stmt)
                    if cur.description is None:
                        return ExecResult(rowcount=cur.rowcount)
                    columns = [d.name for d in cur.description]
                    rows, too_big = fetch_limited(cur, self.limits)
                if too_big:
                    return ExecResult(error=f"result too large: the query returns more than {self.limits.max_result_bytes:,} "
                                            "bytes of text; select fewer rows or columns")
                return ExecResult(columns=columns, rows=_rows(rows[: self.limits.max_rows]),
                                  truncated=len(rows) > self.limits.max_rows)
        except psycopg.Error as err:
            return ExecResult(error=str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__)

    def snapshot(self) -> Snapshot:
        if self.conn is None:
            raise RuntimeError("the database of this session is closed")
        out: Snapshot = {}
        with self.conn.cursor() as cur:
            cur.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = %s ORDER BY table_name", (self.role,))
            names = [r[0] for r in cur.fetchall()]
            for name in names:
                cur.execute(pgsql.SQL("SELECT * FROM {}").format(pgsql.Identifier(self.role, name)))
                out[name.lower()] = ([d.name.lower() for d in cur.description or []], _rows(cur.fetchall()))
        self.conn.rollback()
        return out

    def finish_transaction(self) -> None:
        """Every execute action is committed already."""

    def close(self) -> None:
        if self.conn is not None:
            conn, self.conn = self.conn, None
            conn.close()
            self.backend.drop(self.role)


class SqlPostgresEnv(SqlEnv):
    """`SqlEnv` on PostgreSQL: the same tasks and actions; DB-bench gold statements get "" quoting."""

    name = "sql-postgres"
    description = SqlEnv.description.replace("SQLite", "PostgreSQL")
    system_prompt = SqlEnv.system_prompt.replace("SQLite", "PostgreSQL")
    tools = make_tools("PostgreSQL")

    @classmethod
    def load(cls, data_dir: Path | None = None) -> SqlData:
        data = load_builtin() if data_dir is None else load_dir(Path(data_dir))
        return with_postgres(data, os.environ.get("TRAJGYM_SQL_PG_DSN", DEFAULT_DSN))


def with_postgres(data: SqlData, dsn: str = DEFAULT_DSN) -> SqlData:
    """Switch loaded data to the PostgreSQL backend (gold statements adapted from MySQL quoting)."""
    data.backend = PostgresBackend(dsn)
    for gold in data.gold.values():
        if gold.sql is not None and gold.source == "dbbench":
            gold.sql = mysql_to_postgres(gold.sql)
    return data
