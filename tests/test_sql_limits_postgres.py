"""Issue 20 (SQL part), PostgreSQL backend (server at 127.0.0.1:5432): the attacks a hostile agent tried,
each contained — bounded step time, the right outcome, nothing left on the server — while other sessions'
steps stay fast. Time limit 1 s, kill 1 s later: an attacker's step must end within 10 s."""

from __future__ import annotations

import concurrent.futures
import os
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

psycopg = pytest.importorskip("psycopg")

from envs.base import EnvError
from envs.sql.data import SqlData, load_builtin
from envs.sql.env import SqlEnv
from envs.sql.postgres import DEFAULT_DSN, PostgresBackend, drop_stale, with_postgres
from envs.sql.sandbox import SqlLimits
from services.app import create_app
from tests.support.server import running_server

DSN = os.environ.get("TRAJGYM_SQL_PG_DSN", DEFAULT_DSN)
ROOT = Path(__file__).resolve().parents[1]
QUERY_TASK = "builtin-shop-orders_of-00"
MUTATION_TASK = "builtin-shop-purge_cancelled-00"
ATTACK_BOUND_S = 10.0
# PostgreSQL's LIKE never checks for interrupts: 150,000 × 50,000 steps in one call (about 5 s), cancel or not.
LIKE_BOMB = "SELECT repeat('a', 200000) LIKE '%' || repeat('a', 50000) || 'b'"


def _server_up() -> bool:
    try:
        psycopg.connect(DSN, connect_timeout=3).close()
        return True
    except psycopg.Error:
        return False


pytestmark = [pytest.mark.postgres, pytest.mark.skipif(not _server_up(), reason=f"no PostgreSQL server at {DSN}")]


def _admin() -> psycopg.Connection:
    return psycopg.connect(DSN, autocommit=True)


def _left_on_server(prefix: str) -> tuple[int, int, int]:
    pattern = prefix.replace("_", "\\_") + "\\_%"
    with _admin() as conn:
        roles = conn.execute("SELECT count(*) FROM pg_roles WHERE rolname LIKE %s", (pattern,)).fetchone()[0]
        schemas = conn.execute("SELECT count(*) FROM pg_namespace WHERE nspname LIKE %s", (pattern,)).fetchone()[0]
        los = conn.execute("SELECT count(*) FROM pg_largeobject_metadata m JOIN pg_roles r ON r.oid = m.lomowner "
                           "WHERE r.rolname LIKE %s", (pattern,)).fetchone()[0]
    return roles, schemas, los


@pytest.fixture(scope="module")
def data() -> Iterator[SqlData]:
    d = with_postgres(load_builtin(), DSN)
    d.limits = SqlLimits(time_limit_s=1.0, kill_grace_s=1.0, max_rows=1000)
    yield d
    tag = d.backend.tag  # type: ignore[attr-defined]
    d.backend.close()  # type: ignore[attr-defined]
    assert _left_on_server(tag) == (0, 0, 0)


def _env(data: SqlData, task: str = QUERY_TASK) -> SqlEnv:
    env = SqlEnv(data)
    env.reset(task_id=task)
    return env


def _timed(env: SqlEnv, action: str) -> tuple[float, object]:
    started = time.monotonic()
    result = env.step(action)
    return time.monotonic() - started, result


def test_uninterruptible_functions_are_refused(data: SqlData) -> None:
    env = _env(data)
    for sql in ("SELECT btrim(repeat('a', 200000), repeat('b', 80000) || 'a')", "SELECT ltrim('xxa', 'x')",
                "SELECT rtrim('axx', 'x')", "SELECT translate('abc', 'a', 'b')", "SELECT TRIM(BOTH 'x' FROM 'xax')",
                "SELECT ARRAY[1] && ARRAY[2]"):
        elapsed, result = _timed(env, f"execute[{sql}]")
        assert elapsed < ATTACK_BOUND_S and "permission denied for function" in result.observation, (sql, result)  # type: ignore[attr-defined]
    assert "| a" in env.step("execute[SELECT 'x', TRIM('  a  ')]").observation  # the one-argument forms stay
    env.close()


def test_like_bomb_is_killed_and_its_backend_terminated_and_demoted(data: SqlData) -> None:
    env = _env(data)
    assert env.db is not None
    role, pid = env.db.role, env.db.backend_pid  # type: ignore[attr-defined]
    elapsed, result = _timed(env, f"execute[{LIKE_BOMB}]")
    assert elapsed < ATTACK_BOUND_S
    assert result.done and result.reward == 0.0 and result.info["success"] is False  # type: ignore[attr-defined]
    assert "did not stop at the time limit of 1 s" in result.observation  # type: ignore[attr-defined]
    stuck = data.backend.stuck_backends()  # type: ignore[attr-defined]
    if role in stuck:  # still running on the server: at the lowest priority when the server is local
        import psutil

        if psutil.pid_exists(pid):
            idle = hasattr(os, "SCHED_IDLE") and os.sched_getscheduler(pid) == os.SCHED_IDLE
            assert idle or psutil.Process(pid).nice() == 19
    other = _env(data)  # other sessions meanwhile
    elapsed, result = _timed(other, "execute[SELECT 'n', COUNT(*) FROM orders]")
    assert "| 300" in result.observation and elapsed < 2.0  # type: ignore[attr-defined]
    other.close()
    deadline = time.monotonic() + 60
    while role in data.backend.stuck_backends() and time.monotonic() < deadline:  # type: ignore[attr-defined]
        time.sleep(0.5)
    assert role not in data.backend.stuck_backends()  # type: ignore[attr-defined]  # terminated at its next interrupt check
    assert _left_on_server(role) == (0, 0, 0)


def test_too_many_stuck_backends_refuse_new_sessions() -> None:
    prefix = f"trajgym_sqlq{uuid.uuid4().hex[:4]}"
    data = load_builtin()
    data.backend = PostgresBackend(DSN, prefix=prefix, max_stuck=1)
    data.limits = SqlLimits(time_limit_s=0.5, kill_grace_s=0.5)
    try:
        env = _env(data)
        assert env.step(f"execute[{LIKE_BOMB}]").done
        if data.backend.stuck_backends():  # type: ignore[attr-defined]
            with pytest.raises(EnvError, match="busy"):
                _env(data)
        deadline = time.monotonic() + 60
        while data.backend.stuck_backends() and time.monotonic() < deadline:  # type: ignore[attr-defined]
            time.sleep(0.5)
        assert "| 300" in _env(data).step("execute[SELECT 'n', COUNT(*) FROM orders]").observation  # open again
    finally:
        data.backend.close()  # type: ignore[attr-defined]
    assert _left_on_server(prefix) == (0, 0, 0)


def test_settings_are_set_again_each_action(data: SqlData) -> None:
    env = _env(data)
    assert env.step("execute[SET statement_timeout = 0; SET lock_timeout = 0; SET idle_in_transaction_session_timeout = 0]"
                    ).observation.startswith("OK")
    elapsed, result = _timed(env, "execute[SELECT pg_sleep(5)]")
    assert elapsed < 3.0 and result.observation.startswith("Error: query stopped: it ran longer than the time limit")  # type: ignore[attr-defined]
    assert not result.done  # type: ignore[attr-defined]
    env.close()


def test_storage_quota_temp_tables_and_large_objects(data: SqlData) -> None:
    env = _env(data)
    big = "SELECT g, repeat('x', 1000) AS pad FROM generate_series(1, 100000) g"
    for sql in (f"CREATE TABLE big AS {big}", f"CREATE TEMP TABLE tbig AS {big}", f"CREATE TABLE big2 AS {big}; COMMIT",
                "SELECT lo_from_bytea(0, 'hello')", "BEGIN; SELECT lo_from_bytea(0, 'hello'); COMMIT"):
        elapsed, result = _timed(env, f"execute[{sql}]")
        assert elapsed < ATTACK_BOUND_S and not result.done, (sql, result)  # type: ignore[attr-defined]
        assert "size limit" in result.observation or "large objects are not allowed" in result.observation, (sql, result)  # type: ignore[attr-defined]
    assert env.step("execute[BEGIN; UPDATE orders SET status = 'x' WHERE order_id = 1; ROLLBACK]").observation.startswith("OK")
    assert "| 300 | 0" in env.step("execute[SELECT 'n', COUNT(*), SUM((status = 'x')::int) FROM orders]").observation
    assert env.step("execute[UPDATE orders SET status = 'x' WHERE order_id = 1; COMMIT]").observation.startswith("OK")
    assert "| 300 | 1" in env.step("execute[SELECT 'n', COUNT(*), SUM((status = 'x')::int) FROM orders]").observation
    with _admin() as admin:
        assert admin.execute("SELECT count(*) FROM pg_largeobject_metadata WHERE lomowner = %s::oid",
                             (env.db.role_oid,)).fetchone()[0] == 0  # type: ignore[union-attr]
    env.close()


def test_numeric_result_counts_against_the_budget(data: SqlData) -> None:
    env = _env(data)
    sql = "SELECT " + ", ".join(f"g + {i}" for i in range(800)) + " FROM generate_series(1, 10000) g"
    elapsed, result = _timed(env, f"execute[{sql}]")
    assert elapsed < ATTACK_BOUND_S and result.observation.startswith("Error: result too large")  # type: ignore[attr-defined]
    env.close()


@pytest.fixture(scope="module")
def url(data: SqlData) -> Iterator[str]:
    with running_server(create_app(SqlEnv, data=data)) as base:
        yield base


@pytest.mark.parametrize(("setup", "expected"), [
    ("SET statement_timeout = 0; CREATE VIEW v AS SELECT pg_sleep(30)::text AS x", "Wrong: table"),  # views are not read
    ("ALTER TABLE orders ENABLE ROW LEVEL SECURITY; ALTER TABLE orders FORCE ROW LEVEL SECURITY; "
     "CREATE POLICY p ON orders USING (pg_sleep(0.1) IS NOT NULL)", "Wrong: grading stopped: reading your tables took longer"),
    ("ALTER TABLE orders ENABLE ROW LEVEL SECURITY; ALTER TABLE orders FORCE ROW LEVEL SECURITY; "
     "CREATE POLICY p ON orders USING (1 / (SELECT 0) = 1)", "Wrong: grading stopped: reading table 'orders' failed"),
])
def test_commit_is_bounded_and_never_a_500(url: str, setup: str, expected: str) -> None:
    with httpx.Client(base_url=url, timeout=60) as http:
        sid = http.post("/v1/sessions", json={"task_id": MUTATION_TASK}).json()["session_id"]
        step = http.post(f"/v1/sessions/{sid}/step", json={"action": f"execute[{setup}]"})
        assert step.status_code == 200 and step.json()["observation"].startswith("OK"), step.text
        started = time.monotonic()
        step = http.post(f"/v1/sessions/{sid}/step", json={"action": "commit"})
        assert time.monotonic() - started < ATTACK_BOUND_S
        assert step.status_code == 200, step.text
        body = step.json()
        assert body["done"] is True and body["reward"] == 0.0 and body["observation"].startswith(expected), body
        http.delete(f"/v1/sessions/{sid}")


def _attacker(url: str, until: float) -> list[float]:
    times = []
    with httpx.Client(base_url=url, timeout=60) as http:
        while time.monotonic() < until:
            created = http.post("/v1/sessions", json={"task_id": QUERY_TASK})
            if created.status_code == 409:  # refused while too many stuck backends run
                time.sleep(0.2)
                continue
            sid = created.json()["session_id"]
            started = time.monotonic()
            body = http.post(f"/v1/sessions/{sid}/step", json={"action": f"execute[{LIKE_BOMB}]"}).json()
            times.append(time.monotonic() - started)
            assert body["done"] is True
            http.delete(f"/v1/sessions/{sid}")
    return times


def test_victim_steps_stay_fast_while_attackers_overrun(url: str, data: SqlData) -> None:
    until = time.monotonic() + 6
    victim = []
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        futures = [pool.submit(_attacker, url, until) for _ in range(2)]
        with httpx.Client(base_url=url, timeout=60) as http:
            sid = http.post("/v1/sessions", json={"task_id": QUERY_TASK}).json()["session_id"]
            for _ in range(15):
                started = time.monotonic()
                body = http.post(f"/v1/sessions/{sid}/step", json={"action": "execute[SELECT 'n', COUNT(*) FROM orders]"}).json()
                victim.append(time.monotonic() - started)
                assert "| 300" in body["observation"]
                time.sleep(0.2)
            http.delete(f"/v1/sessions/{sid}")
        attacks = [t for f in futures for t in f.result()]
    assert attacks and max(attacks) < ATTACK_BOUND_S
    assert max(victim) < 2.0, victim
    print(f"\nvictim steps with 2 attackers: median {sorted(victim)[len(victim) // 2] * 1000:.1f} ms, max {max(victim) * 1000:.1f} ms")
    deadline = time.monotonic() + 90
    while data.backend.stuck_backends() and time.monotonic() < deadline:  # type: ignore[attr-defined]
        time.sleep(0.5)


def _wait_admin_gone(prefix: str) -> None:
    """The crashed service's connections end a moment after its process."""
    deadline = time.monotonic() + 10
    with _admin() as conn:
        while time.monotonic() < deadline and conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE %s", (prefix.replace("_", "\\_") + "%",)).fetchone()[0]:
            time.sleep(0.1)


def test_a_crashed_service_leaves_nothing_after_the_next_start() -> None:
    """A service killed with its sessions open (roles, schemas, a large object a role owns): the next backend
    with the same prefix removes them, and `drop_stale` copes with large objects too."""
    prefix = f"trajgym_sqlc{uuid.uuid4().hex[:4]}"
    script = textwrap.dedent(f"""
        import os, psycopg
        from envs.sql.data import load_builtin
        from envs.sql.env import SqlEnv
        from envs.sql.postgres import PostgresBackend
        data = load_builtin()
        data.backend = PostgresBackend({DSN!r}, prefix={prefix!r})
        env = SqlEnv(data)
        env.reset(task_id={QUERY_TASK!r})
        with psycopg.connect({DSN!r}, autocommit=True) as admin:  # a large object the session's role owns
            oid = admin.execute("SELECT lo_from_bytea(0, 'left over')").fetchone()[0]
            admin.execute(f'ALTER LARGE OBJECT {{oid}} OWNER TO "{{env.db.role}}"')
        os._exit(1)  # crash: nothing cleaned up
    """)
    subprocess.run([sys.executable, "-c", script], cwd=ROOT, check=False, timeout=120)
    assert _left_on_server(prefix) == (1, 1, 1)
    _wait_admin_gone(prefix)
    PostgresBackend(DSN, prefix=prefix).close()  # its start drops what dead backends left
    assert _left_on_server(prefix) == (0, 0, 0)
    subprocess.run([sys.executable, "-c", script], cwd=ROOT, check=False, timeout=120)
    assert _left_on_server(prefix) == (1, 1, 1)
    assert drop_stale(DSN, prefix) == 1
    assert _left_on_server(prefix) == (0, 0, 0)
