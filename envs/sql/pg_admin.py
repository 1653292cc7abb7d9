"""Administration of the PostgreSQL backend's sessions: dropping a session's role with everything it owns,
cleaning up after crashed services, hardening the database, and quieting backends that ignore cancellation.

A session is a role named ``{tag}_s{12 hex}`` owning a schema of the same name; `tag` is
``{prefix}_{8 hex}``, one per running backend, whose admin connection carries the tag as its
``application_name``. So a tag with no such connection belongs to a service that is gone, and
`drop_dead` can remove its roles safely while other services share the database.
Dropping a role ends its connections, then ``DROP OWNED`` (tables, schema, large objects,
privileges), then ``DROP ROLE``; with a short lock timeout, so that a backend still busy in a
statement cannot block the admin connection (the drop is retried later).
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import psycopg
from psycopg import sql as pgsql

log = logging.getLogger("trajgym.sql.postgres")

# Functions whose loops never check for interrupts in PostgreSQL 15: with long operands one call runs
# for minutes whatever statement_timeout, pg_cancel_backend or pg_terminate_backend say (measured:
# btrim(200,000 chars, 40,000 chars) 2.4 s past a 0.5 s cancel). EXECUTE is revoked from PUBLIC
# (superusers keep it). LIKE / ILIKE (textlike, texticlike) have the same flaw but are needed.
UNINTERRUPTIBLE = (
    "btrim(text, text)", "ltrim(text, text)", "rtrim(text, text)",
    "btrim(bytea, bytea)", "ltrim(bytea, bytea)", "rtrim(bytea, bytea)",
    "translate(text, text, text)", "arrayoverlap(anyarray, anyarray)",
)


def like_pattern(prefix: str) -> str:
    """LIKE pattern for names that start with `prefix` + '_' (underscores taken literally)."""
    return prefix.replace("\\", "\\\\").replace("_", "\\_").replace("%", "\\%") + "\\_%"


def admin_connect(dsn: str, tag: str) -> psycopg.Connection:
    conn = psycopg.connect(dsn, autocommit=True, application_name=tag, connect_timeout=10)
    conn.execute("SET statement_timeout = '120s'; SET lock_timeout = '5s'")
    return conn


def drop_role(conn: psycopg.Connection, role: str, wait_ms: int = 1000) -> bool:
    """End `role`'s connections, drop what it owns (schema, tables, large objects) and the role itself.
    False (nothing raised) when a lock held by one of its still-running statements stopped it."""
    r = pgsql.Identifier(role)
    try:
        conn.execute("SET lock_timeout = '500ms'")
        conn.execute("SELECT pg_catalog.pg_terminate_backend(pid, %s) FROM pg_catalog.pg_stat_activity WHERE usename = %s",
                     (wait_ms, role))
        exists = conn.execute("SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = %s", (role,)).fetchone() is not None
        if exists:
            conn.execute(pgsql.SQL("DROP OWNED BY {} CASCADE").format(r))
        conn.execute(pgsql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(r))
        conn.execute(pgsql.SQL("DROP ROLE IF EXISTS {}").format(r))
        return True
    except psycopg.errors.LockNotAvailable:
        return False
    finally:
        if not conn.closed:
            try:
                conn.execute("SET lock_timeout = '5s'")
            except psycopg.Error:
                pass


def _names(conn: psycopg.Connection, prefix: str) -> tuple[list[str], list[str]]:
    pattern = like_pattern(prefix)
    roles = [r for (r,) in conn.execute("SELECT rolname FROM pg_catalog.pg_roles WHERE rolname LIKE %s", (pattern,))]
    schemas = [n for (n,) in conn.execute("SELECT nspname FROM pg_catalog.pg_namespace WHERE nspname LIKE %s", (pattern,))]
    return roles, schemas


def _drop_all(conn: psycopg.Connection, roles: list[str], schemas: list[str]) -> int:
    dropped = 0
    for role in roles:
        if drop_role(conn, role, wait_ms=0):
            dropped += 1
        else:
            log.warning("could not drop role %s yet (a statement of it still holds a lock)", role)
    for schema in set(schemas) - set(roles):
        conn.execute(pgsql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(pgsql.Identifier(schema)))
    return dropped


def drop_stale(dsn: str, prefix: str = "trajgym_sql") -> int:
    """Drop every role and schema named `prefix`_* (left by killed services), with what they own.
    Run it only when no service using `prefix` is alive (`drop_dead` is safe while some are).
    Returns the number of roles dropped."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        return _drop_all(conn, *_names(conn, prefix))


def drop_dead(conn: psycopg.Connection, prefix: str) -> int:
    """Drop the roles and schemas of backends (tags) under `prefix` that no longer have an admin connection."""
    live = {a for (a,) in conn.execute(
        "SELECT application_name FROM pg_catalog.pg_stat_activity WHERE usename = current_user AND application_name LIKE %s",
        (like_pattern(prefix),))}
    shape = re.compile(rf"^({re.escape(prefix)}_[0-9a-f]{{8}})_s[0-9a-f]{{12}}$")
    roles, schemas = _names(conn, prefix)

    def dead(name: str) -> bool:
        m = shape.match(name)
        return m is not None and m.group(1) not in live

    return _drop_all(conn, [r for r in roles if dead(r)], [s for s in schemas if dead(s)])


def harden(conn: psycopg.Connection) -> list[str]:
    """Revoke EXECUTE on the `UNINTERRUPTIBLE` functions from PUBLIC (database-wide; idempotent).
    Returns those revoked; logs (does not raise) when the connection may not."""
    done = []
    for signature in UNINTERRUPTIBLE:
        try:
            conn.execute(f"REVOKE EXECUTE ON FUNCTION pg_catalog.{signature} FROM PUBLIC")
            done.append(signature)
        except psycopg.Error as err:
            log.warning("cannot revoke EXECUTE on %s from PUBLIC: %s", signature, str(err).strip())
    return done


def is_local(dsn: str) -> bool:
    host = psycopg.conninfo.conninfo_to_dict(dsn).get("host") or ""
    return host in ("", "localhost", "127.0.0.1", "::1") or str(host).startswith("/")


def backend_visible(pid: int, role: str) -> bool:
    """Is process `pid` of this machine the server's backend of `role`? (Not when the server runs elsewhere
    or in another pid namespace, or the backend has exited.)"""
    try:
        return role.encode() in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def demote(pid: int, role: str, level: int = 2) -> bool:
    """A lower CPU priority (`envs.sql.priority.lower`; by default the lowest) for the backend `pid` of `role`
    when it runs on this machine and we may change it (a statement that ignored cancellation burns a core
    until it returns). Best effort."""
    from envs.sql.priority import lower

    return backend_visible(pid, role) and lower(pid, level)
