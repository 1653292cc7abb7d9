"""Which SQL tasks cannot be graded honestly, and why: withheld under ``tasks=gradable`` (the default).

* a question whose gold query fails, or whose gold result is empty (as the Spider evaluator runs
  it): an empty result, e.g. ``SELECT 1 WHERE 0``, would be graded correct. In the shared Spider
  copy these are questions over tables the source dump left empty;
* a DB-bench question with an empty label, or whose label AgentBench's comparison matches with an
  empty answer (labels such as ``none`` or ``0``, which its cleaning maps to the same ``"0"`` as
  an empty answer): committing nothing would be graded correct;
* a data-change task whose gold statement fails, or leaves the graded state unchanged (doing
  nothing would pass);
* under official grading, a DB-bench data change whose gold statement, run on the SQLite
  emulation, does not give the task's ``answer_md5`` (no agent could pass it here).
"""

from __future__ import annotations

from collections import defaultdict

from envs.sql import dbbench_eval, grading, reward
from envs.sql.data import SqlData, SqlGold
from envs.sql.grading import GradeError
from envs.sql.reward import Snapshot

GOLD_FAILS = "gold SQL fails on its database"
EMPTY_GOLD = "question whose gold result is empty (an empty result would pass)"
EMPTY_LABEL = "DB-bench question whose label an empty answer matches"
NO_CHANGE = "data change whose gold statement leaves the graded state unchanged (doing nothing would pass)"
NOT_REPRODUCED = "DB-bench data change whose gold statement does not reproduce answer_md5 on SQLite"


def _initial_snapshot(data: SqlData, gold: SqlGold) -> Snapshot:
    db = data.open_db(gold.db, data.grading_limits)
    try:
        return db.snapshot()
    finally:
        db.close()


def _mutation_problem(data: SqlData, task_id: str, gold: SqlGold, official: bool) -> str | None:
    initial = _initial_snapshot(data, gold)
    try:
        after = grading.expected_snapshot(data, gold)
    except GradeError:
        return GOLD_FAILS
    if gold.source == "dbbench" and official:
        expected = grading.dbbench_expected_hash(data, task_id)
        if grading.dbbench_tables_match(data, task_id, initial):
            return NO_CHANGE
        if not dbbench_eval.compare_results(dbbench_eval.committed_hash(grading.task_table_rows(after, gold)),
                                            expected, gold.task_type):
            return NOT_REPRODUCED
        return None
    return NO_CHANGE if reward.snapshots_match(initial, after, exact=official)[0] else None


def _question_problem(data: SqlData, task_id: str, gold: SqlGold) -> str | None:
    if gold.sql is None:
        label = gold.label or []
        return EMPTY_LABEL if not label or dbbench_eval.compare_results("", label, gold.task_type) else None
    try:
        rows, _ = grading.spider_gold(data, task_id)
    except GradeError:
        return GOLD_FAILS
    return EMPTY_GOLD if not rows else None


def ungradable(data: SqlData, official: bool = True) -> dict[str, list[str]]:
    """Served tasks that cannot be graded honestly, by reason (module docstring)."""
    found: dict[str, list[str]] = defaultdict(list)
    for task_id in list(data.tasks):
        gold = data.gold[task_id]
        problem = (_question_problem(data, task_id, gold) if gold.kind == "query"
                   else _mutation_problem(data, task_id, gold, official))
        if problem is not None:
            found[problem].append(task_id)
    return dict(found)
