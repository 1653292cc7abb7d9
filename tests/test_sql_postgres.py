"""The SQL env's PostgreSQL backend (server at 127.0.0.1:5432): expert episodes, sandbox, isolation, cleanup."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

psycopg = pytest.importorskip("psycopg")

from envs.sql.data import SqlData, load_builtin, load_dir
from envs.sql.env import SqlEnv
from envs.sql.postgres import DEFAULT_DSN, mysql_to_postgres, with_postgres
from envs.sql.sandbox import SqlLimits

DSN = os.environ.get("TRAJGYM_SQL_PG_DSN", DEFAULT_DSN)
SQL_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "sql"


def _server_up() -> bool:
    try:
        psycopg.connect(DSN, connect_timeout=3).close()
        return True
    except psycopg.Error:
        return False


pytestmark = [pytest.mark.postgres, pytest.mark.skipif(not _server_up(), reason=f"no PostgreSQL server at {DSN}")]


@pytest.fixture(scope="module")
def data() -> Iterator[SqlData]:
    d = with_postgres(load_builtin(), DSN)
    d.limits = SqlLimits(time_limit_s=1.0, max_rows=1000)
    yield d
    tag = d.backend.tag  # type: ignore[attr-defined]
    d.backend.close()  # type: ignore[attr-defined]
    with psycopg.connect(DSN) as conn:  # nothing of this backend is left on the server
        assert conn.execute("SELECT count(*) FROM pg_roles WHERE rolname LIKE %s", (tag + "%",)).fetchone() == (0,)
        assert conn.execute("SELECT count(*) FROM pg_namespace WHERE nspname LIKE %s", (tag + "%",)).fetchone() == (0,)


def _play(env: SqlEnv, task_id: str) -> float:
    """The expert's reward; 0 when it cannot finish (its gold statement keeps failing)."""
    env.reset(task_id=task_id)
    for _ in range(4):
        result = env.step(env.expert_action())
        if result.done:
            return result.reward
    return 0.0


def test_expert_on_one_task_per_template(data: SqlData) -> None:
    firsts: dict[str, str] = {}
    for tid in data.task_ids():
        firsts.setdefault(tid.rsplit("-", 1)[0], tid)
    env = SqlEnv(data)
    failures = [tid for tid in firsts.values() if _play(env, tid) != 1.0]
    env.close()
    assert failures == []


def test_wrong_answers_and_no_change_fail(data: SqlData) -> None:
    env = SqlEnv(data)
    env.reset(task_id="builtin-company-count_dept-00")
    assert env.step("submit[-1]").reward == 0.0
    env.reset(task_id="builtin-shop-restock-00")
    assert env.step("commit").reward == 0.0


def test_sandbox_on_postgres(data: SqlData) -> None:
    a, b = SqlEnv(data), SqlEnv(data)
    a.reset(task_id="builtin-shop-orders_of-00")
    b.reset(task_id="builtin-shop-orders_of-00")
    denied = {
        "SELECT pg_read_file('/etc/passwd')": "permission denied",
        "COPY orders TO '/tmp/trajgym_sql_orders.csv'": "pg_write_server_files",
        "CREATE EXTENSION dblink": "permission denied",
        "SELECT lo_import('/etc/passwd')": "permission denied",
    }
    for sql, expected in denied.items():
        obs = a.step(f"execute[{sql}]").observation
        assert obs.startswith("Error:") and expected in obs, (sql, obs)
    obs = a.step("execute[SET statement_timeout = 0; SELECT pg_sleep(30)]").observation
    assert obs.startswith("Error: query stopped") and "time limit of 1 s" in obs
    obs = a.step("execute[SELECT generate_series(1, 10000000)]").observation
    assert "Row limit reached" in obs and "first 1000" in obs
    runaway = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT COUNT(*) FROM c"
    obs = a.step(f"execute[{runaway}]").observation  # stopped by the time limit or by temp_file_limit
    assert obs.startswith("Error: query stopped") or "temp_file_limit" in obs, obs
    obs = a.step("execute[SELECT repeat('x', 900000), generate_series(1, 100000)]").observation
    assert obs.startswith("Error: result too large") or "temp_file_limit" in obs, obs  # client or server limit
    assert a.step("execute[DROP TABLE orders CASCADE]").observation.startswith("OK")
    assert "300" in b.step("execute[SELECT COUNT(*) FROM orders]").observation
    role_a = a.db.role  # type: ignore[union-attr]
    assert "permission denied" in b.step(f'execute[SELECT COUNT(*) FROM "{role_a}".customers]').observation
    a.close()
    b.close()


def test_mysql_quoting_to_postgres() -> None:
    assert mysql_to_postgres("UPDATE `My Table` SET `Year` = 'it''s `x`' WHERE \"Rank\" = 1") == \
        "UPDATE \"My Table\" SET \"year\" = 'it''s `x`' WHERE \"rank\" = 1"


@pytest.mark.skipif(not (SQL_DATA / "dbbench" / "standard.jsonl").is_file(), reason=f"no DB-bench data under {SQL_DATA}")
def test_dbbench_sample_on_postgres() -> None:
    """DB-bench gold statements are MySQL: most run on PostgreSQL after quoting fixes, not all
    (reserved words, text-vs-integer comparisons). The whole set is measured in bench_sql.py."""
    data = with_postgres(load_dir(SQL_DATA / "dbbench"), DSN)
    try:
        env = SqlEnv(data)
        ids = data.task_ids()
        sample = [t for t in ids if data.gold[t].kind == "mutation"][::5] + [t for t in ids if data.gold[t].kind == "query"][:5]
        failures = [t for t in sample if _play(env, t) != 1.0]
        env.close()
        print(f"\nDB-bench on PostgreSQL (sample): expert {len(sample) - len(failures)}/{len(sample)}")
        assert len(failures) <= len(sample) // 5
    finally:
        data.backend.close()  # type: ignore[attr-defined]


def test_drop_stale_removes_leftovers() -> None:
    from envs.sql.postgres import PostgresBackend, drop_stale

    prefix = "trajgym_sqltest"
    backend = PostgresBackend(DSN, prefix=prefix)
    data = load_builtin()
    data.backend = backend
    env = SqlEnv(data)
    env.reset(task_id="builtin-shop-orders_of-00")
    assert env.db is not None
    env.db.kill()  # type: ignore[attr-defined]  # its worker killed, as if the service had been killed
    assert drop_stale(DSN, prefix) == 1
    with psycopg.connect(DSN) as conn:
        assert conn.execute("SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'trajgym\\_sqltest%'").fetchone() == (0,)
    backend.close()  # idempotent with respect to what is already gone


def test_schema_shown_as_postgres_sees_it(data: SqlData) -> None:
    env = SqlEnv(data)
    obs = env.reset(task_id="builtin-company-count_dept-00").observation
    assert "Table employees (200 rows): emp_id bigint, name text" in obs and "PRIMARY KEY (emp_id)" in obs
    assert "sample rows" in obs
    env.close()
