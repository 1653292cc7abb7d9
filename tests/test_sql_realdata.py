"""The SQL env on the real copies of Spider (15 databases, 817 questions) and AgentBench DB-bench (300 tasks)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from envs.sql import gradable
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


@pytest.fixture(scope="module")
def served() -> SqlData:
    """The data as `trajgym serve` loads it: default modes (official grading, ungradable tasks withheld)."""
    return SqlEnv.load_data(SQL_DATA)


def test_withheld_tasks_are_the_ungradable_ones(served: SqlData) -> None:
    assert served.modes == {"grading": "official", "tasks": "gradable"}
    assert served.withheld == {gradable.EMPTY_GOLD: 87, gradable.EMPTY_LABEL: 5, gradable.NOT_REPRODUCED: 1}
    assert len(served.tasks) == 817 + 300 - 93
    assert "dbbench-standard-225" not in served.tasks  # its gold statement's hash differs from answer_md5 here
    everything = SqlEnv.load_data(SQL_DATA, {"tasks": "all"})
    assert everything.withheld == {} and len(everything.tasks) == 817 + 300


def test_spider_expert_scores_one_on_served_tasks(served: SqlData) -> None:
    env = SqlEnv(served)
    failures, wrong_accepted = [], []
    spider = [t for t in served.task_ids() if served.gold[t].source == "spider"]
    for tid in spider:
        env.reset(task_id=tid)
        assert env.gold_rows(), tid  # empty-gold questions are withheld
        reward, action = _play_expert(env, tid)
        if reward != 1.0:
            failures.append((tid, action[:200]))
        env.reset(task_id=tid)  # an empty answer, or an empty query result, must not pass
        if env.step("submit[[]]").reward != 0.0:
            wrong_accepted.append(tid)
        env.reset(task_id=tid)
        env.step("execute[SELECT 1 WHERE 0]")
        if env.step("commit").reward != 0.0:
            wrong_accepted.append(tid)
    print(f"\nSpider (official grading): {len(spider)} served tasks, expert failures {len(failures)}")
    assert len(spider) == 817 - 87
    assert failures == []
    assert wrong_accepted == []


def test_dbbench_expert_and_doing_nothing(served: SqlData) -> None:
    env = SqlEnv(served)
    bench = [t for t in served.task_ids() if served.gold[t].source == "dbbench"]
    kinds = Counter(served.tasks[t].meta["type"] for t in bench)
    assert kinds["INSERT"] == 100 and kinds["UPDATE"] == 99
    score: Counter[str] = Counter()
    total: Counter[str] = Counter()
    nothing_passes = []
    for tid in bench:
        gold = served.gold[tid]
        group = "INSERT/UPDATE" if gold.kind == "mutation" else "SELECT-style"
        if gold.kind == "mutation":
            assert gold.sql and gold.answer_md5 and gold.label is None  # graded by AgentBench's table hash
        else:
            assert gold.label and gold.sql is None  # graded by the label
        reward, _ = _play_expert(env, tid)
        score[group] += int(reward)
        total[group] += 1
        env.reset(task_id=tid)  # doing nothing (or answering nothing) must fail
        if env.step("commit" if gold.kind == "mutation" else "submit[]").reward != 0.0:
            nothing_passes.append(tid)
    print(f"\nDB-bench expert success (official grading): SELECT-style {score['SELECT-style']}/{total['SELECT-style']}, "
          f"INSERT/UPDATE {score['INSERT/UPDATE']}/{total['INSERT/UPDATE']}; tasks passed by doing nothing: {len(nothing_passes)}")
    assert score == total
    assert nothing_passes == []


def test_dbbench_select_answers(served: SqlData) -> None:
    env = SqlEnv(served)
    tid = "dbbench-standard-000"
    assert served.gold[tid].label == ["Women +60kg Bronze"]
    env.reset(task_id=tid)
    assert env.step("submit[women +60KG  bronze]").reward == 0.0  # AgentBench compares text exactly
    for right in ("Women +60kg Bronze", "'Women +60kg Bronze'", "[('Women +60kg Bronze',)]", '["Women +60kg Bronze"]'):
        env.reset(task_id=tid)
        assert env.step(f"submit[{right}]").reward == 1.0, right
    env.reset(task_id=tid)
    step = env.step("execute[SELECT Notes FROM `Jiu-Jitsu Championships Results` WHERE Method = 'decision']")
    assert "Women +60kg Bronze" in step.observation  # MySQL's collation: case-insensitive comparison
    assert env.step("commit").reward == 1.0  # the rows are committed as MySQL's connector prints them
    env.reset(task_id=tid)
    assert env.step("submit[Women +60kg Silver]").reward == 0.0
    counting = next(t for t in served.task_ids() if served.tasks[t].meta.get("type") == "counting")
    env.reset(task_id=counting)
    label = served.gold[counting].label
    assert label is not None and label[0].endswith(".0")
    assert env.step(f"submit[{int(float(label[0]))}]").reward == 1.0  # numbers within 0.01
    lenient = SqlEnv(SqlEnv.load_data(SQL_DATA / "dbbench", {"grading": "lenient"}))
    lenient.reset(task_id=tid)
    assert lenient.step("submit[women +60KG  bronze]").reward == 1.0  # the lenient mode normalises text


def test_dbbench_mysql_gold_quoted_for_sqlite(served: SqlData) -> None:
    tid = next(t for t in served.task_ids() if served.tasks[t].meta.get("table") == "1952_British_Grand_Prix_0")
    assert "`1952_British_Grand_Prix_0`" in (served.gold[tid].sql or "")
    env = SqlEnv(served)
    assert _play_expert(env, tid)[0] == 1.0
