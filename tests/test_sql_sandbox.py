"""Sandbox: file access, extensions, runaway and huge queries, isolation — each a clear message,
and the service stays healthy (checked over HTTP)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from clients.env_client import AsyncEnvClient
from envs.sql.data import SqlData, load_builtin
from envs.sql.env import SqlEnv
from envs.sql.sandbox import SqlLimits
from services.app import create_app
from tests.support.server import running_server

TASK = "builtin-shop-orders_of-00"
RUNAWAY = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT COUNT(*) FROM c"
TEN_MILLION = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 10000000) SELECT x FROM c"


@pytest.fixture(scope="module")
def data() -> SqlData:
    d = load_builtin()
    d.limits = SqlLimits(time_limit_s=0.5, max_rows=1000, max_growth_bytes=2**20)
    return d


@pytest.fixture(scope="module")
def url(data: SqlData) -> Iterator[str]:
    with running_server(create_app(SqlEnv, data=data)) as base:
        yield base


def _env(data: SqlData) -> SqlEnv:
    env = SqlEnv(data)
    env.reset(task_id=TASK)
    return env


def test_attach_and_vacuum_into_denied(data: SqlData, tmp_path: Path) -> None:
    env = _env(data)
    target = tmp_path / "stolen.db"
    for sql in (f"ATTACH DATABASE '{target}' AS x", f"VACUUM INTO '{target}'", "DETACH DATABASE main"):
        obs = env.step(f"execute[{sql}]").observation
        assert obs.startswith("Error:") and "not allowed" in obs, obs
    assert not target.exists()


def test_load_extension_and_pragmas_denied(data: SqlData) -> None:
    env = _env(data)
    obs = env.step("execute[SELECT load_extension('/tmp/evil.so')]").observation
    assert obs.startswith("Error:") and "load_extension" in obs
    for pragma in ("PRAGMA writable_schema = 1", "PRAGMA max_page_count = 999999999", "PRAGMA temp_store_directory = '/tmp'",
                   "PRAGMA journal_mode = WAL"):
        obs = env.step(f"execute[{pragma}]").observation
        assert obs.startswith("Error:") and "not allowed" in obs, pragma
    assert "price" in env.step("execute[PRAGMA table_info(products)]").observation


def test_runaway_query_stopped_by_time_limit(data: SqlData) -> None:
    env = _env(data)
    started = time.monotonic()
    obs = env.step(f"execute[{RUNAWAY}]").observation
    assert time.monotonic() - started < 5
    assert obs.startswith("Error: query stopped") and "time limit of 0.5 s" in obs
    assert "| 120" in env.step("execute[SELECT 'n', COUNT(*) FROM customers]").observation  # the session still works


def test_ten_million_rows_cut_at_row_limit(data: SqlData) -> None:
    env = _env(data)
    result = env.step(f"execute[{TEN_MILLION}]")
    assert "Row limit reached" in result.observation and "first 1000" in result.observation
    assert env.last_rows is not None and len(env.last_rows) == 1000 and env.last_truncated
    assert env.step("commit").reward == 0.0  # a cut-off result is never graded as an answer


def test_huge_values_and_results_refused(data: SqlData) -> None:
    env = _env(data)
    obs = env.step("execute[SELECT zeroblob(50000000)]").observation
    assert obs.startswith("Error: string or blob too big") and "limited to" in obs
    wide = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT zeroblob(999999) FROM c"
    obs = env.step(f"execute[{wide}]").observation
    assert obs.startswith("Error: result too large"), obs
    assert "(1 row)" in env.step("execute[SELECT 1]").observation


def test_database_growth_limited(data: SqlData) -> None:
    env = _env(data)
    sql = ("CREATE TABLE big AS WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 100000) "
           "SELECT x, randomblob(1000) AS b FROM c")
    obs = env.step(f"execute[{sql}]").observation
    assert obs.startswith("Error: database size limit reached"), obs
    assert "no such table" in env.step("execute[SELECT COUNT(*) FROM big]").observation


def test_drop_table_isolated_between_sessions(data: SqlData) -> None:
    a, b = _env(data), _env(data)
    assert a.step("execute[DROP TABLE orders]").observation.startswith("OK")
    assert "no such table" in a.step("execute[SELECT COUNT(*) FROM orders]").observation
    assert "300" in b.step("execute[SELECT COUNT(*) FROM orders]").observation
    c = _env(data)  # a new session after the drop gets a fresh copy
    assert "300" in c.step("execute[SELECT COUNT(*) FROM orders]").observation


async def test_sandbox_over_http_leaves_service_healthy(url: str, tmp_path: Path) -> None:
    async with AsyncEnvClient(url) as client:
        first = await client.create(task_id=TASK)
        second = await client.create(task_id=TASK)
        sid = first.session_id
        attacks = {
            f"ATTACH DATABASE '{tmp_path / 'x.db'}' AS x": "not allowed",
            "SELECT load_extension('x')": "load_extension",
            RUNAWAY: "time limit",
            TEN_MILLION: "Row limit reached",
            "DROP TABLE orders": "OK",
        }
        for sql, expected in attacks.items():
            step = await client.step(sid, {"name": "execute_sql", "arguments": {"sql": sql}})
            assert expected in step.observation and not step.done, sql
        assert (await client.health())["status"] == "ok"
        other = await client.step(second.session_id, "execute[SELECT COUNT(*) FROM orders]")
        assert "300" in other.observation
        mine = await client.step(sid, "execute[SELECT COUNT(*) FROM orders]")
        assert "no such table" in mine.observation
        await client.close(sid)
        await client.close(second.session_id)
        assert not (tmp_path / "x.db").exists()
