"""PostgreSQL backend: the same tasks on a PostgreSQL server, one schema and one role per session.

Each database template (a serialized SQLite database) is read once into memory;
column types are inferred from the stored values (bigint, double precision or
text), primary keys are kept. A session gets a fresh login role without
privileges (no superuser, no file-access roles, no CREATE on the database) and
a schema it owns, filled with the template's tables by COPY; its connection's
`search_path` is that schema. The connection lives in the session's worker
process (`envs.sql.worker`, `envs.sql.pg_session`): each execute action is one
transaction, committed when it succeeds (as in SQLite's autocommit mode), under
the time limit (settings re-set each action, a cancel at the limit), the result
budget and a storage quota (every relation the role owns, temporary tables
included; no large objects). A statement that ignores the cancel (PostgreSQL
checks it only at interrupt points) gets its worker killed `kill_grace_s` later:
the episode ends, the backend is terminated (effective at its next interrupt
check) and, when it runs on this machine, reniced to the lowest priority; while
`max_stuck` such backends still run, new sessions are refused. EXECUTE on the
functions known to run long without interrupt checks is revoked from PUBLIC
(`pg_admin.UNINTERRUPTIBLE`; LIKE/ILIKE remain).

Cleanup: closing a session drops its role with everything it owns (schema,
large objects); a backend's start drops what dead backends left (`pg_admin.drop_dead`).

What PostgreSQL does not hide from a session's role, whatever its privileges:
the names of all databases, roles (other sessions' roles included) and schemas;
the names, columns and types of every table in the database (other sessions'
schemas too, though not their rows); the source of every function
(``pg_proc.prosrc``); the owners and ids of large objects; server settings and
version; ``pg_stat_activity`` rows of other connections (user, database, client
address, application name, start times; not their query text).

Serve it with ``trajgym serve envs.sql.postgres:SqlPostgresEnv``; the server is
``TRAJGYM_SQL_PG_DSN`` (default ``host=127.0.0.1 port=5432 user=postgres dbname=test``,
a role that may create roles and schemas; the database should be dedicated to
the env, since the revocations above apply to it as a whole).
"""

from __future__ import annotations

import atexit
import os
import re
import sqlite3
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql as pgsql

from envs.base import EnvError
from envs.sql import pg_admin, render
from envs.sql.data import DbTemplate, SqlData, load_builtin, load_dir
from envs.sql.env import SqlEnv, make_tools
from envs.sql.limits import SqlLimits
from envs.sql.pg_session import py_value
from envs.sql.render import show_ident
from envs.sql.priority import cpu_seconds as worker_cpu_seconds
from envs.sql.worker import WorkerDb

__all__ = ["DEFAULT_DSN", "PgSandbox", "PostgresBackend", "SqlPostgresEnv", "drop_stale", "mysql_to_postgres", "py_value",
           "read_template", "with_postgres"]

DEFAULT_DSN = "host=127.0.0.1 port=5432 user=postgres dbname=test"
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
    """One role + schema per session, filled from the template's rows (cached in memory). Thread-safe."""

    name = "postgres"

    def __init__(self, dsn: str = DEFAULT_DSN, prefix: str = "trajgym_sql", harden: bool = True, max_stuck: int = 8) -> None:
        self.dsn = dsn
        self.prefix = prefix
        self.max_stuck = max_stuck
        self.tag = f"{prefix}_{uuid.uuid4().hex[:8]}"
        self._admin = pg_admin.admin_connect(dsn, self.tag)
        self._lock = threading.Lock()
        self._templates: dict[str, list[tuple[PgTable, list[tuple[Any, ...]]]]] = {}
        self._sessions: dict[str, PgSandbox] = {}
        self._pending: set[str] = set()  # roles whose drop a lock stopped; retried
        self._stuck: dict[str, tuple[int, int]] = {}  # role -> (backend pid, role oid) of statements that ignored the cancel
        self.local = pg_admin.is_local(dsn)
        self._closed = False
        with self._lock:
            pg_admin.drop_dead(self._admin, prefix)
            self.revoked = pg_admin.harden(self._admin) if harden else []
        atexit.register(self.close)

    def _template(self, key: str, template: DbTemplate) -> list[tuple[PgTable, list[tuple[Any, ...]]]]:
        tables = self._templates.get(key)
        if tables is None:
            tables = self._templates[key] = read_template(template)
        return tables

    def open(self, key: str, template: DbTemplate, limits: SqlLimits) -> PgSandbox:
        with self._lock:
            if self._closed:
                raise RuntimeError("the PostgreSQL backend is closed")
            self._tidy_locked()
            if len(self._stuck) >= self.max_stuck:
                raise EnvError(f"the PostgreSQL server is busy with {len(self._stuck)} statements of ended sessions that "
                               "ignored cancellation; new sessions are refused until they finish")
            tables = self._template(key, template)
            role = f"{self.tag}_s{uuid.uuid4().hex[:12]}"
            r = pgsql.Identifier(role)
            timeout_ms = int(limits.time_limit_s * 1000)
            with self._admin.transaction():
                self._admin.execute(pgsql.SQL("CREATE ROLE {} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT "
                                              "CONNECTION LIMIT 2").format(r))
                self._admin.execute(pgsql.SQL("CREATE SCHEMA {} AUTHORIZATION {}").format(r, r))
                for setting, value in (("search_path", role), ("statement_timeout", str(timeout_ms)),
                                       ("lock_timeout", str(timeout_ms)),
                                       ("idle_in_transaction_session_timeout", str(max(10 * timeout_ms, 60_000))),
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
                self._admin.execute("RESET ROLE")
                row = self._admin.execute(
                    "SELECT r.oid::bigint, (SELECT COALESCE(SUM(pg_catalog.pg_total_relation_size(c.oid)), 0)::bigint "
                    "FROM pg_catalog.pg_class c WHERE c.relowner = r.oid AND c.relkind IN ('r', 'm', 'S')) "
                    "FROM pg_catalog.pg_roles r WHERE r.rolname = %s", (role,)).fetchone()
            assert row is not None
            role_oid, base_size = int(row[0]), int(row[1])
        try:
            conninfo = psycopg.conninfo.make_conninfo(self.dsn, user=role, application_name=role)
            sandbox = PgSandbox(self, role, role_oid, conninfo, base_size + limits.max_growth_bytes, limits)
        except BaseException:
            self.retire(role, None, stuck=False)
            raise
        with self._lock:
            self._sessions[role] = sandbox
        return sandbox

    def describe(self, key: str, template: DbTemplate) -> str:
        """Schema text with PostgreSQL names (plain names lower-cased) and the inferred types."""
        with self._lock:
            tables = self._template(key, template)
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

    # ----- the end of sessions ------------------------------------------------------------------
    def retire(self, role: str, sandbox: PgSandbox | None, stuck: bool) -> None:
        """A session ended: drop its role (now, or later if a lock of its still-running statement stops that).
        `stuck`: its worker was killed in a statement that ignored the cancel."""
        with self._lock:
            self._sessions.pop(role, None)
            if self._closed:
                return
            if stuck and sandbox is not None:
                self._stuck[role] = (sandbox.backend_pid, sandbox.role_oid)
                if self.local:
                    pg_admin.demote(sandbox.backend_pid, role)
            self._drop_locked(role)

    def drop(self, role: str) -> None:
        self.retire(role, None, stuck=False)

    def _drop_locked(self, role: str) -> None:
        try:
            if pg_admin.drop_role(self._admin, role, wait_ms=0 if role in self._stuck else 1000):
                self._pending.discard(role)
            else:
                self._pending.add(role)
        except psycopg.OperationalError:
            self._pending.add(role)
            self._reconnect_locked()

    def _reconnect_locked(self) -> None:
        try:
            self._admin.close()
        finally:
            self._admin = pg_admin.admin_connect(self.dsn, self.tag)

    def _tidy_locked(self) -> None:
        """Forget stuck backends that have ended; retry the drops that locks stopped."""
        if self._admin.closed:
            self._reconnect_locked()
        if self._stuck:
            running = {(pid, oid) for pid, oid in self._admin.execute(
                "SELECT pid, usesysid::bigint FROM pg_catalog.pg_stat_activity WHERE pid = ANY(%s)",
                ([p for p, _ in self._stuck.values()],)).fetchall()}
            self._stuck = {r: v for r, v in self._stuck.items() if v in running}
        for role in list(self._pending):
            self._drop_locked(role)

    def stuck_backends(self) -> dict[str, int]:
        """Roles of ended sessions whose statement still runs on the server, with the backend's pid."""
        with self._lock:
            self._tidy_locked()
            return {r: pid for r, (pid, _) in self._stuck.items()}

    def close(self) -> None:
        """Drop every session still open. Idempotent."""
        with self._lock:
            open_sessions = list(self._sessions.values())
        for sandbox in open_sessions:
            sandbox.close()
        with self._lock:
            if not self._closed:
                for role in list(self._pending):
                    self._drop_locked(role)
                self._closed = True
                self._admin.close()


def drop_stale(dsn: str = DEFAULT_DSN, prefix: str = "trajgym_sql") -> int:
    """Drop every role and schema named `prefix`_* (left by a killed service) with what they own (large
    objects too). Run it only when no service using `prefix` is alive (a backend's start cleans up after
    dead ones by itself). Returns the number of roles dropped."""
    return pg_admin.drop_stale(dsn, prefix)


class PgSandbox(WorkerDb):
    """One session's schema on the server, reached from its worker process through its own unprivileged role."""

    def __init__(self, backend: PostgresBackend, role: str, role_oid: int, conninfo: str, quota_bytes: int,
                 limits: SqlLimits) -> None:
        self.backend = backend
        self.role = role
        self.role_oid = role_oid
        self.backend_pid = -1
        self._backend_visible = False
        self._retired = False
        params = {"conninfo": conninfo, "role": role, "role_oid": role_oid, "quota_bytes": quota_bytes,
                  "limits": limits.model_dump_json()}
        super().__init__(limits, ("open_postgres", params), open_timeout=30.0)
        self.backend_pid = int(self.info["backend_pid"])
        self._backend_visible = backend.local and pg_admin.backend_visible(self.backend_pid, role)

    def work_cpu_seconds(self) -> float | None:
        """The server's backend does the work: its CPU time where it runs on this machine."""
        return worker_cpu_seconds(self.backend_pid) if self._backend_visible else None

    def on_slow(self, level: int) -> None:
        """The server's backend does the work: it gets the lower priority where that is possible (the worker
        only waits, so it takes no turns)."""
        if self._backend_visible:
            pg_admin.demote(self.backend_pid, self.role, level)

    def close(self) -> None:
        super().close()
        if not self._retired:
            self._retired = True
            self.backend.retire(self.role, self, stuck=self.overran)


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
