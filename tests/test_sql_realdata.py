"""The SQL env on the real copies of Spider (15 databases, 817 questions) and AgentBench DB-bench (300 tasks)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from envs.sql.data import SqlData, load_dir
from envs.sql.env import SqlEnv
from envs.sql.sandbox import SandboxDb

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
SQL_DATA = DATA / "sql"

pytestmark = pytest.mark.skipif(not (SQL_DATA / "spider" / "questions.json").is_file()
                                or not (SQL_DATA / "dbbench" / "standard.jsonl").is_file(),
                                reason=f"real SQL data not found under {SQL_DATA} (../shared/data/sql from the repo root)")


@pytest.fixture(scope="module")
def data() -> SqlData:
    return load_dir(SQL_DATA)


def _play_expert(env: SqlEnv, task_id: str) -> tuple[float, str]:
    env.reset(task_id=task_id)
    for _ in range(6):
        action = env.expert_action()
        result = env.step(action)
        if result.done:
            return result.reward, action
    raise AssertionError(f"expert did not finish {task_id}")


def test_every_spider_question_loads_and_gold_executes(data: SqlData) -> None:
    raw = json.loads((SQL_DATA / "spider" / "questions.json").read_text())
    spider = [t for t in data.task_ids() if data.gold[t].source == "spider"]
    assert len(spider) == len(raw) == 817
    assert len({data.gold[t].db for t in spider}) == 15
    for tid in spider:
        gold = data.gold[tid]
        db = SandboxDb(data.databases[gold.db].data, data.limits)
        result = db.execute(gold.sql or "")
        db.close()
        assert result.error is None and not result.truncated, (tid, result.error)
    splits = Counter(data.tasks[t].split.value for t in spider)
    assert set(splits) == {"train", "dev", "test"}


def test_spider_expert_scores_one_on_nonempty_gold(data: SqlData) -> None:
    env = SqlEnv(data)
    empty, failures, wrong_accepted = [], [], []
    for tid in (t for t in data.task_ids() if data.gold[t].source == "spider"):
        env.reset(task_id=tid)
        gold_rows = env.gold_rows()
        if not gold_rows:
            empty.append(tid)
            continue
        reward, action = _play_expert(env, tid)
        if reward != 1.0:
            failures.append((tid, action[:200]))
        env.reset(task_id=tid)  # an empty answer must not pass on a non-empty gold
        if env.step("submit[[]]").reward != 0.0:
            wrong_accepted.append(tid)
    print(f"\nSpider: {817 - len(empty)} tasks with non-empty gold, expert failures {len(failures)}; "
          f"{len(empty)} gold results are empty (truncated tables in the source dump)")
    assert failures == []
    assert wrong_accepted == []
    assert len(empty) < 817 // 5


def test_dbbench_tasks_graded_by_label_and_tables(data: SqlData) -> None:
    env = SqlEnv(data)
    bench = [t for t in data.task_ids() if data.gold[t].source == "dbbench"]
    assert len(bench) == 300
    kinds = Counter(data.tasks[t].meta["type"] for t in bench)
    assert kinds["INSERT"] == 100 and kinds["UPDATE"] == 100
    score: Counter[str] = Counter()
    total: Counter[str] = Counter()
    unchanged_passes = []
    for tid in bench:
        gold = data.gold[tid]
        group = "INSERT/UPDATE" if gold.kind == "mutation" else "SELECT-style"
        if gold.kind == "mutation":
            assert gold.sql and gold.label is None  # graded by comparing tables
        else:
            assert gold.label and gold.sql is None  # graded by the label
        reward, _ = _play_expert(env, tid)
        score[group] += int(reward)
        total[group] += 1
        env.reset(task_id=tid)  # doing nothing must fail (unless the gold statement changes nothing)
        if env.step("commit").reward != 0.0:
            unchanged_passes.append(tid)
    print(f"\nDB-bench expert success: SELECT-style {score['SELECT-style']}/{total['SELECT-style']}, "
          f"INSERT/UPDATE {score['INSERT/UPDATE']}/{total['INSERT/UPDATE']}; "
          f"tasks passed by doing nothing: {len(unchanged_passes)}")
    assert score == total
    assert len(unchanged_passes) <= 2  # one DB-bench UPDATE sets a value it already has


def test_dbbench_select_answers(data: SqlData) -> None:
    env = SqlEnv(data)
    tid = "dbbench-standard-000"
    assert data.gold[tid].label == ["Women +60kg Bronze"]
    env.reset(task_id=tid)
    assert env.step("submit[women +60KG  bronze]").reward == 1.0
    env.reset(task_id=tid)
    step = env.step("execute[SELECT Notes FROM \"Jiu-Jitsu Championships Results\" WHERE Method = 'Decision']")
    assert "Women +60kg Bronze" in step.observation
    assert env.step("commit").reward == 1.0
    env.reset(task_id=tid)
    assert env.step("submit[Women +60kg Silver]").reward == 0.0
    counting = next(t for t in data.task_ids() if data.tasks[t].meta.get("type") == "counting")
    env.reset(task_id=counting)
    label = data.gold[counting].label
    assert label is not None and label[0].endswith(".0")
    assert env.step(f"submit[{int(float(label[0]))}]").reward == 1.0  # '1.0' and 1 are the same number


def test_dbbench_mysql_gold_quoted_for_sqlite(data: SqlData) -> None:
    tid = next(t for t in data.task_ids() if data.tasks[t].meta.get("table") == "1952_British_Grand_Prix_0")
    assert '"1952_British_Grand_Prix_0"' in (data.gold[tid].sql or "")
    env = SqlEnv(data)
    assert _play_expert(env, tid)[0] == 1.0
