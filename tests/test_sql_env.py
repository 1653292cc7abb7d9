"""Episodes of the SQL env on the built-in task set: expert, grading paths, feedback, gymnasium."""

from __future__ import annotations

import json

import gymnasium
import pytest

import envs  # noqa: F401  (registers the gymnasium ids)
from envs.base import StepAfterEnd
from envs.sql.data import SqlData, load_builtin
from envs.sql.env import SqlEnv


@pytest.fixture(scope="module")
def data() -> SqlData:
    return load_builtin()


def play_expert(env: SqlEnv, task_id: str, max_steps: int = 6) -> float:
    env.reset(task_id=task_id)
    for _ in range(max_steps):
        result = env.step(env.expert_action())
        if result.done:
            assert isinstance(result.info["success"], bool)
            return result.reward
    raise AssertionError(f"expert did not finish {task_id}")


def test_expert_solves_every_builtin_task(data: SqlData) -> None:
    failures = [tid for tid in data.task_ids() if play_expert(SqlEnv(data), tid) != 1.0]
    assert failures == []


def test_first_observation_has_question_and_schema(data: SqlData) -> None:
    env = SqlEnv(data)
    obs = env.reset(task_id="builtin-company-count_dept-00")
    assert obs.instruction in obs.observation
    for table in ("departments", "employees", "projects", "assignments"):
        assert f"Table {table} (" in obs.observation
    assert "salary INTEGER" in obs.observation and "sample rows" in obs.observation
    assert "PRIMARY KEY (emp_id, project_id)" in obs.observation


def test_wrong_answers_score_zero(data: SqlData) -> None:
    env = SqlEnv(data)
    for tid in [t for t in data.task_ids() if data.gold[t].kind == "query"][:40]:
        env.reset(task_id=tid)
        result = env.step("submit[no such answer]")
        assert result.done and result.reward == 0.0 and result.info["success"] is False, tid


def test_commit_grades_last_query_result(data: SqlData) -> None:
    env = SqlEnv(data)
    env.reset(task_id="builtin-company-count_dept-00")
    gold = data.gold["builtin-company-count_dept-00"].sql
    assert "1 row" in env.step(f"```sql\n{gold}\n```").observation
    env.step("execute[UPDATE employees SET salary = salary + 1]")  # no result set: the last query stays graded
    result = env.step("commit")
    assert result.reward == 1.0 and "last query" in result.observation
    env.reset(task_id="builtin-company-count_dept-00")
    env.step("execute[SELECT COUNT(*) + 1 FROM employees]")
    assert env.step("commit").reward == 0.0
    env.reset(task_id="builtin-company-count_dept-00")
    result = env.step("commit")
    assert result.reward == 0.0 and "no query result" in result.observation


def test_ordered_gold_needs_order(data: SqlData) -> None:
    tid = "builtin-company-top_earners-00"
    assert data.gold[tid].ordered
    env = SqlEnv(data)
    env.reset(task_id=tid)
    rows = env.step(f"execute[{data.gold[tid].sql}]")
    assert rows.info["error"] is False
    right = env.expert_action()
    assert right.startswith("submit[")
    answer = json.loads(right[len("submit["):-1])
    env.reset(task_id=tid)
    assert env.step(f"submit[{json.dumps(answer[::-1])}]").reward == 0.0
    env.reset(task_id=tid)
    assert env.step(right).reward == 1.0


def test_mutation_tasks_graded_by_tables(data: SqlData) -> None:
    tid = next(t for t in data.task_ids() if data.gold[t].kind == "mutation" and "raise" in t)
    env = SqlEnv(data)
    env.reset(task_id=tid)
    assert env.step("commit").reward == 0.0  # nothing changed
    env.reset(task_id=tid)
    gold = data.gold[tid].sql
    env.step(f"execute[{gold}]")
    env.step("execute[DELETE FROM assignments WHERE hours < 10]")  # collateral damage
    assert env.step("commit").reward == 0.0
    env.reset(task_id=tid)
    env.step("execute[BEGIN]")
    env.step(f"execute[{gold}]")
    result = env.step("submit[done]")  # submit on a data task grades the tables; an open transaction is committed
    assert result.reward == 1.0 and result.info["kind"] == "mutation"


def test_feedback_and_errors_do_not_end_episode(data: SqlData) -> None:
    env = SqlEnv(data)
    env.reset(task_id="builtin-shop-orders_of-00")
    bad = env.step("please tell me")
    assert bad.info.get("invalid_action") and "execute[" in bad.observation and not bad.done
    err = env.step("execute[SELEC 1]")
    assert err.observation.startswith("Error:") and "syntax error" in err.observation and not err.done
    none = env.step("execute[   ]")
    assert none.observation.startswith("Error:")
    result = env.step("execute[SELECT name FROM customers]")
    assert "Showing 30 of 120 rows." in result.observation
    assert env.turns == 4


def test_turn_limit_and_close(data: SqlData) -> None:
    env = SqlEnv(data)
    env.reset(task_id="builtin-shop-orders_of-00")
    for _ in range(SqlEnv.max_turns):
        result = env.step("execute[SELECT 1]")
    assert result.done and result.truncated
    with pytest.raises(StepAfterEnd):
        env.step("execute[SELECT 1]")
    env.close()
    env.close()
    assert env.db is None


def test_finished_episode_releases_database(data: SqlData) -> None:
    env = SqlEnv(data)
    env.reset(task_id="builtin-shop-orders_of-00")
    env.step("submit[1]")
    assert env.db is None


def test_gymnasium_make() -> None:
    env = gymnasium.make("trajgym/Sql-v0")
    obs, info = env.reset(options={"task_id": "builtin-shop-single-00"})
    assert "Database schema" in obs and info["task_id"] == "builtin-shop-single-00"
    obs, reward, terminated, truncated, _ = env.step("execute[SELECT category, AVG(price) FROM products GROUP BY category]")
    assert "Books" in obs and not terminated and not truncated and reward == 0.0
    obs, reward, terminated, truncated, info = env.step("commit")
    assert reward == 1.0 and terminated and not truncated and info["success"] is True
    env.close()
