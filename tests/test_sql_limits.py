"""Issue 20 (SQL part): attacks a hostile agent tried on the SQLite backend, each contained — a bounded time
and memory for the attacker's step, the right outcome — while other sessions' steps stay fast (over HTTP).

Bounds are generous for a loaded 2-core CI machine: the time limit is 1 s and a statement that ignores it
is killed 1 s later, so an attacker's step must end within 10 s; a victim's step within 2 s.
"""

from __future__ import annotations

import concurrent.futures
import sqlite3
import statistics
import time
from collections.abc import Iterator

import httpx
import psutil
import pytest

from envs.sql import reward
from envs.sql.data import SqlData, load_builtin
from envs.sql.engine import SqliteSession
from envs.sql.env import SqlEnv
from envs.sql.sandbox import SandboxDb, SqlLimits
from services.app import create_app
from tests.support.server import running_server

QUERY_TASK = "builtin-shop-orders_of-00"
MUTATION_TASK = "builtin-shop-purge_cancelled-00"
# One SQLite instruction: the interrupt is checked only between instructions (each such call took 200 s).
LTRIM = "SELECT ltrim(printf('%.*c', 200000, 'a'), printf('%.*c', 80000, 'b') || 'a')"
WIDE_NUMBERS = ("WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 10000) SELECT "
                + ", ".join(f"x + {i}" for i in range(800)) + " FROM c")
ATTACK_BOUND_S = 10.0
VICTIM_BOUND_S = 2.0


def _limits(**extra: object) -> SqlLimits:
    return SqlLimits(time_limit_s=1.0, kill_grace_s=1.0, **extra)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def data() -> SqlData:
    d = load_builtin()
    d.limits = _limits()
    return d


@pytest.fixture(scope="module")
def url(data: SqlData) -> Iterator[str]:
    with running_server(create_app(SqlEnv, data=data)) as base:
        yield base


def _env(data: SqlData, task: str = QUERY_TASK) -> SqlEnv:
    env = SqlEnv(data)
    env.reset(task_id=task)
    return env


def _timed_step(env: SqlEnv, action: str) -> tuple[float, object]:
    started = time.monotonic()
    result = env.step(action)
    return time.monotonic() - started, result


def _rss_mb() -> float:
    return psutil.Process().memory_info().rss / 2**20


# ----- the time limit the engine cannot skip ---------------------------------------------------------
def test_ltrim_in_one_instruction_is_killed_and_ends_the_episode(data: SqlData) -> None:
    env = _env(data)
    assert env.db is not None
    pid = env.db.pid  # type: ignore[attr-defined]
    elapsed, result = _timed_step(env, f"execute[{LTRIM}]")
    assert elapsed < ATTACK_BOUND_S
    assert result.done and result.reward == 0.0 and result.info["success"] is False  # type: ignore[attr-defined]
    assert "did not stop at the time limit of 1 s" in result.observation and "episode ends" in result.observation  # type: ignore[attr-defined]
    deadline = time.monotonic() + 5
    while psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE  # the CPU it burnt is free


def test_an_ordinary_runaway_is_interrupted_and_the_session_goes_on(data: SqlData) -> None:
    env = _env(data)
    elapsed, result = _timed_step(env, "execute[WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT COUNT(*) FROM c]")
    assert elapsed < ATTACK_BOUND_S and not result.done  # type: ignore[attr-defined]
    assert result.observation.startswith("Error: query stopped: it ran longer than the time limit of 1 s")  # type: ignore[attr-defined]
    assert "| 300" in env.step("execute[SELECT 'n', COUNT(*) FROM orders]").observation
    env.close()


def test_interrupt_alone_cannot_stop_one_long_instruction() -> None:
    """Why the worker process: in process, the watchdog's interrupt waits for the instruction to end."""
    session = SqliteSession(load_builtin().databases["builtin/shop"].data, SqlLimits(time_limit_s=0.1))
    try:
        started = time.monotonic()
        result = session.execute("SELECT ltrim(printf('%.*c', 30000, 'a'), printf('%.*c', 20000, 'b') || 'a')")
        elapsed = time.monotonic() - started
    finally:
        session.close()
    assert result.error is not None and "time limit of 0.1 s" in result.error  # interrupted only after the call ended:
    assert elapsed > 0.4  # 30,000 × 20,000 steps in one instruction (about 1 s here), 4x the limit


# ----- budgets that count everything --------------------------------------------------------------------
def test_numeric_result_counts_against_the_budget(data: SqlData) -> None:
    env = _env(data)
    before = _rss_mb()
    elapsed, result = _timed_step(env, f"execute[{WIDE_NUMBERS}]")
    assert elapsed < ATTACK_BOUND_S and not result.done  # type: ignore[attr-defined]
    assert result.observation.startswith("Error: result too large") and "every value counts" in result.observation  # type: ignore[attr-defined]
    assert env.last_rows is None
    assert _rss_mb() - before < 100  # was ~250 MB kept per session
    assert "(1 row)" in env.step("execute[SELECT 1]").observation
    env.close()


def test_memory_ceiling_is_an_error_not_a_crash() -> None:
    data = load_builtin()
    data.limits = _limits(max_memory_bytes=32 * 2**20)
    env = _env(data)
    sql = ("WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 200000) "
           "SELECT COUNT(*) FROM (SELECT DISTINCT randomblob(1000) FROM c)")
    elapsed, result = _timed_step(env, f"execute[{sql}]")
    assert elapsed < ATTACK_BOUND_S and not result.done  # type: ignore[attr-defined]
    assert result.observation.startswith("Error: out of memory") and "32 MiB" in result.observation  # type: ignore[attr-defined]
    assert "| 300" in env.step("execute[SELECT 'n', COUNT(*) FROM orders]").observation
    env.close()


# ----- grading under the same limits ----------------------------------------------------------------------
def test_commit_reading_a_slow_virtual_column_is_the_agents_failure(data: SqlData) -> None:
    env = _env(data, MUTATION_TASK)
    add = ("ALTER TABLE orders ADD COLUMN g TEXT AS (ltrim(printf('%.*c', 20000 + customer_id, 'a'), "
           "printf('%.*c', 20000, 'b') || 'a')) VIRTUAL")
    assert env.step(f"execute[{add}]").observation.startswith("OK")  # stores nothing, costs at each read
    before = _rss_mb()
    elapsed, result = _timed_step(env, "commit")
    assert elapsed < ATTACK_BOUND_S
    assert result.done and result.reward == 0.0 and result.info["success"] is False  # type: ignore[attr-defined]
    assert result.observation.startswith("Wrong: grading stopped")  # type: ignore[attr-defined]
    assert _rss_mb() - before < 100  # was 1.2 GB


def test_commit_reading_huge_virtual_values_stops_at_the_snapshot_budget(data: SqlData) -> None:
    env = _env(data, MUTATION_TASK)
    add = "ALTER TABLE orders ADD COLUMN g TEXT AS (printf('%.*c', 900000, 'x')) VIRTUAL"
    assert env.step(f"execute[{add}]").observation.startswith("OK")
    before = _rss_mb()
    elapsed, result = _timed_step(env, "commit")
    assert elapsed < ATTACK_BOUND_S and result.done and result.reward == 0.0  # type: ignore[attr-defined]
    assert "grading stopped: your tables hold more than" in result.observation  # type: ignore[attr-defined]
    assert _rss_mb() - before < 150


def test_commit_on_a_column_that_fails_when_read_is_the_agents_failure(data: SqlData) -> None:
    env = _env(data, MUTATION_TASK)
    assert env.step("execute[ALTER TABLE orders ADD COLUMN g TEXT AS (json('not json')) VIRTUAL]").observation.startswith("OK")
    result = env.step("commit")
    assert result.done and result.reward == 0.0 and "grading stopped: reading table 'orders' failed" in result.observation


def test_snapshot_reads_the_tables_as_reward_snapshot_does(data: SqlData) -> None:
    """The limited snapshot must keep the shape the table comparison expects."""
    template = data.databases["builtin/shop"].data
    db = SandboxDb(template, data.limits)
    try:
        assert db.execute("UPDATE orders SET status = 'x' WHERE order_id < 5").rowcount == 4
        limited = db.snapshot()
    finally:
        db.close()
    conn = sqlite3.connect(":memory:")
    conn.deserialize(template)
    conn.execute("UPDATE orders SET status = 'x' WHERE order_id < 5")
    assert limited == reward.snapshot(conn)
    conn.close()


# ----- the service stays responsive -------------------------------------------------------------------------
def _step(http: httpx.Client, sid: str, sql: str) -> tuple[float, dict[str, object]]:
    started = time.monotonic()
    resp = http.post(f"/v1/sessions/{sid}/step", json={"action": f"execute[{sql}]"}, timeout=60)
    assert resp.status_code == 200, resp.text
    return time.monotonic() - started, resp.json()


def _attacker(url: str, attack: str, until: float) -> list[float]:
    """Open a session, run the attack, repeat until `until`: every step's time."""
    times = []
    with httpx.Client(base_url=url) as http:
        while time.monotonic() < until:
            sid = http.post("/v1/sessions", json={"task_id": MUTATION_TASK}, timeout=60).json()["session_id"]
            if attack == "commit":
                _step(http, sid, "ALTER TABLE orders ADD COLUMN g TEXT AS (ltrim(printf('%.*c', 20000 + customer_id, 'a'), "
                                 "printf('%.*c', 20000, 'b') || 'a')) VIRTUAL")
                started = time.monotonic()
                body = http.post(f"/v1/sessions/{sid}/step", json={"action": "commit"}, timeout=60).json()
                times.append(time.monotonic() - started)
            else:
                elapsed, body = _step(http, sid, attack)
                times.append(elapsed)
            assert body["done"] is True and body["reward"] == 0.0
            http.delete(f"/v1/sessions/{sid}", timeout=60)
    return times


@pytest.mark.parametrize("attackers", [6])
def test_victim_steps_stay_fast_while_attackers_overrun(url: str, attackers: int) -> None:
    """More attackers than the service's 4 worker threads, each overrunning the time limit in one
    instruction (or in grading); a victim's steps meanwhile are correct and fast."""
    until = time.monotonic() + 6
    with concurrent.futures.ThreadPoolExecutor(attackers) as pool:
        futures = [pool.submit(_attacker, url, "commit" if i % 3 == 2 else LTRIM, until) for i in range(attackers)]
        time.sleep(0.5)  # the attacks are running
        victim_times = []
        with httpx.Client(base_url=url) as http:
            while time.monotonic() < until:
                started = time.monotonic()
                sid = http.post("/v1/sessions", json={"task_id": QUERY_TASK}, timeout=60).json()["session_id"]
                victim_times.append(time.monotonic() - started)
                for _ in range(10):  # within the turn limit
                    elapsed, body = _step(http, sid, "SELECT 'n', COUNT(*) FROM orders")
                    assert "| 300" in str(body["observation"]) and body["done"] is False
                    victim_times.append(elapsed)
                    time.sleep(0.05)
                http.delete(f"/v1/sessions/{sid}", timeout=60)
            assert http.get("/healthz", timeout=10).status_code == 200
        attack_times = [t for f in futures for t in f.result()]
    assert attack_times and max(attack_times) < ATTACK_BOUND_S, attack_times
    assert len(victim_times) >= 10 and max(victim_times) < VICTIM_BOUND_S, victim_times
    print(f"\nvictim steps with {attackers} attackers: n={len(victim_times)} median {statistics.median(victim_times) * 1000:.1f} ms, "
          f"max {max(victim_times) * 1000:.1f} ms; attacker steps max {max(attack_times):.2f} s")



def test_worker_replies_are_plain_data_only() -> None:
    """A worker runs hostile SQL: what it sends back may load no class (no code runs in the service)."""
    import io
    import pickle

    from envs.sql.worker import _PlainData

    class Evil:
        def __reduce__(self) -> tuple[object, tuple[str]]:
            return (print, ("pwned",))

    assert _PlainData(io.BytesIO(pickle.dumps(("result", {"rows": [(1, 2.5, "x", b"y", None)]})))).load() == \
        ("result", {"rows": [(1, 2.5, "x", b"y", None)]})
    with pytest.raises(pickle.UnpicklingError, match="refused"):
        _PlainData(io.BytesIO(pickle.dumps(Evil()))).load()
