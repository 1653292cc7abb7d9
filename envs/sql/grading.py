"""The SQL env's verdicts: what `submit[answer]` and `commit` are graded against, per task source and mode.

``grading=official`` (the default) is the published evaluators' rule:

* Spider (and the built-in queries, Spider-style): `commit` grades the last query that returned rows
  as test-suite-sql-eval does (`envs.sql.spider_eval`): it and the gold are preprocessed and run on a
  fresh copy of the database, and their results compared. `submit[answer]` — which Spider itself
  does not have — compares the answer's rows (parsed with exact types, `answer.parse_answer(typed=True)`)
  with the same result comparison against the gold's rows, DISTINCT removed as the reference runs it
  or as written.
* DB-bench questions: `submit[answer]` is AgentBench's ``compare_results(answer, label, type)``
  (`envs.sql.dbbench_eval`); `commit` commits the last query's rows as the MySQL connector prints
  them (``str(rows)``, e.g. ``[('Paris',)]``).
* DB-bench data changes: the task's table is hashed as AgentBench hashes it and compared with the
  task's ``answer_md5`` (computed from the gold statement where the data has none).
* Built-in data changes: every table equal to the state after the gold statement, values exactly
  equal, rows as a multiset.

``grading=lenient`` keeps trajgym's earlier tolerant comparison (`envs.sql.reward`): normalised text,
numbers within a relative 1e-4, flexible answer shapes, tables compared after normalisation.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from envs.sql import dbbench_eval, reward, spider_eval
from envs.sql.answer import parse_answer
from envs.sql.data import SqlData, SqlGold
from envs.sql.reward import Snapshot
from envs.sql.sandbox import ExecResult, SessionDb

OFFICIAL = "official"
LENIENT = "lenient"
GRADING_CHOICES = (OFFICIAL, LENIENT)


class GradeError(RuntimeError):
    """The gold itself failed to run (a data problem, not the agent's)."""


@dataclass(frozen=True)
class Verdict:
    ok: bool
    message: str


_RIGHT_QUERY = "Correct: your last query's result matches the expected answer."
_WRONG_QUERY = "Wrong: your last query's result does not match the expected answer."
_RIGHT_ANSWER = "Correct: your answer matches the expected answer."
_WRONG_ANSWER = "Wrong: your answer does not match the expected answer."


def grading_mode(data: SqlData) -> str:
    return data.modes.get("grading", OFFICIAL)


# ----- gold results ------------------------------------------------------------------------------
def _gold_result(data: SqlData, task_id: str, gold: SqlGold, variant: str, sql: str) -> ExecResult:
    key = (task_id, variant)
    cached = data.gold_results.get(key)
    if cached is None:
        cached = data.run_fresh(gold, sql, trusted=True)
        if cached.error is not None:
            raise GradeError(f"gold query of {gold.db} failed: {cached.error}")
        if cached.truncated:
            raise GradeError(f"gold query of {gold.db} returns more than {data.grading_limits.max_rows} rows")
        data.gold_results[key] = cached
    return cached


def spider_gold(data: SqlData, task_id: str) -> tuple[list[tuple[Any, ...]], bool]:
    """The gold's rows as the Spider evaluator runs it (postprocessed, DISTINCT removed) and whether order matters."""
    gold = data.gold[task_id]
    assert gold.sql is not None
    try:
        prepared = spider_eval.prepare(gold.sql)
    except spider_eval.SpiderEvalError as err:
        raise GradeError(f"gold query of {gold.db}: {err}") from err
    result = _gold_result(data, task_id, gold, "spider", spider_eval.executable(prepared))
    return result.rows, spider_eval.order_matters(prepared)


def written_gold(data: SqlData, task_id: str) -> list[tuple[Any, ...]]:
    """The gold query's rows as written (DISTINCT kept; the evaluator's other preprocessing applied)."""
    gold = data.gold[task_id]
    assert gold.sql is not None
    sql = gold.sql if gold.source == "dbbench" else spider_eval.executable(spider_eval.postprocess(gold.sql))
    return _gold_result(data, task_id, gold, "written", sql).rows


# ----- official rules ------------------------------------------------------------------------------
def spider_sql_matches(data: SqlData, task_id: str, pred_sql: str) -> bool:
    """test-suite-sql-eval's ``eval_exec_match`` of a predicted query on the task's database."""
    gold_rows, ordered = spider_gold(data, task_id)
    try:
        prepared = spider_eval.prepare(pred_sql)
    except spider_eval.SpiderEvalError:
        return False
    result = data.run_fresh(data.gold[task_id], spider_eval.executable(prepared))
    if result.error is not None or result.truncated:
        return False
    return spider_eval.result_eq(gold_rows, result.rows, ordered)


def answer_rows(answer: str, width: int) -> list[tuple[Any, ...]]:
    """A submitted answer as result rows: a list of lists is rows; flat values are one column
    when the gold has one, else one row."""
    parsed = parse_answer(answer, typed=True)
    if all(isinstance(item, list) for item in parsed):
        return [tuple(item) for item in parsed]
    if any(isinstance(item, list) for item in parsed):
        return [tuple(item) if isinstance(item, list) else (item,) for item in parsed]
    if width == 1:
        return [(item,) for item in parsed]
    return [tuple(parsed)] if parsed else []


def spider_answer_matches(data: SqlData, task_id: str, answer: str) -> bool:
    gold_rows, ordered = spider_gold(data, task_id)
    written = written_gold(data, task_id)
    width = len((gold_rows or written or [()])[0])
    rows = answer_rows(answer, width)
    return spider_eval.result_eq(gold_rows, rows, ordered) or spider_eval.result_eq(written, rows, ordered)


def rows_as_committed(rows: Sequence[Sequence[Any]]) -> str:
    """Result rows as AgentBench's MySQL connector shows them (``str`` of a list of tuples)."""
    return str([tuple(r) for r in rows])


def task_table_rows(snap: Snapshot, gold: SqlGold) -> list[tuple[Any, ...]] | None:
    """The DB-bench task table's rows, in its original columns (None when the table or a column is gone)."""
    entry = snap.get((gold.table or "").lower())
    if entry is None:
        return None
    cols, rows = entry
    try:
        index = [cols.index(c.lower()) for c in gold.columns]
    except ValueError:
        return None
    return [tuple(r[i] for i in index) for r in rows]


def dbbench_expected_hash(data: SqlData, task_id: str) -> str:
    """The task's ``answer_md5``; where the data has none, the hash after the gold statement."""
    gold = data.gold[task_id]
    if gold.answer_md5:
        return gold.answer_md5
    key = (task_id, "md5")
    cached = data.gold_results.get(key)
    if cached is None:
        assert gold.sql is not None
        db = data.open_gold_db(gold.db)
        try:
            result = db.execute(data.dialect(gold, gold.sql))
            if result.error is not None:
                raise GradeError(f"gold statement of {gold.db} failed: {result.error}")
            snap = db.snapshot()
        finally:
            db.close()
        cached = ExecResult(rows=[(dbbench_eval.committed_hash(task_table_rows(snap, gold)),)])
        data.gold_results[key] = cached
    return str(cached.rows[0][0])


def dbbench_tables_match(data: SqlData, task_id: str, snap: Snapshot) -> bool:
    gold = data.gold[task_id]
    committed = dbbench_eval.committed_hash(task_table_rows(snap, gold))
    return dbbench_eval.compare_results(committed, dbbench_expected_hash(data, task_id), gold.task_type)


# ----- the env's entry points --------------------------------------------------------------------
def grade_query(data: SqlData, task_id: str, answer: str | None, last_sql: str | None,
                last_rows: list[tuple[Any, ...]] | None, last_truncated: bool) -> Verdict:
    """A question task, ended by `submit[answer]` (answer given) or `commit` (the last query)."""
    gold = data.gold[task_id]
    lenient = grading_mode(data) == LENIENT
    if answer is None:
        if last_rows is None or last_sql is None:
            return Verdict(False, "Wrong: no query result to grade (run a query that returns rows, or use submit[answer]).")
        if gold.sql is not None and not lenient:
            ok = spider_sql_matches(data, task_id, last_sql)
            return Verdict(ok, _RIGHT_QUERY if ok else _WRONG_QUERY)
        if last_truncated:
            return Verdict(False, "Wrong: the last query's result was cut off at the row limit.")
        if gold.sql is None:
            ok = (reward.label_matches(reward.flatten(last_rows), gold.label or []) if lenient else
                  dbbench_eval.compare_results(rows_as_committed(last_rows), gold.label or [], gold.task_type))
        else:
            ok = reward.rows_match(last_rows, written_gold(data, task_id), gold.ordered)
        return Verdict(ok, _RIGHT_QUERY if ok else _WRONG_QUERY)
    if gold.sql is None:
        if lenient:
            ok = reward.submission_matches(answer, [[v] for v in gold.label or []], ordered=False)
        else:
            ok = dbbench_eval.compare_results(answer, gold.label or [], gold.task_type)
    elif lenient:
        ok = reward.submission_matches(answer, written_gold(data, task_id), gold.ordered)
    else:
        ok = spider_answer_matches(data, task_id, answer)
    return Verdict(ok, _RIGHT_ANSWER if ok else _WRONG_ANSWER)


def expected_snapshot(data: SqlData, gold: SqlGold) -> Snapshot:
    """All tables after the gold statement on a fresh copy."""
    assert gold.sql is not None
    db: SessionDb = data.open_gold_db(gold.db)
    try:
        result = db.execute(data.dialect(gold, gold.sql))
        if result.error is not None:
            raise GradeError(f"gold statement of {gold.db} failed: {result.error}")
        return db.snapshot()
    finally:
        db.close()


def grade_mutation(data: SqlData, task_id: str, actual: Snapshot) -> Verdict:
    """A data-change task, from the state of the session's tables."""
    gold = data.gold[task_id]
    if gold.source == "dbbench" and grading_mode(data) == OFFICIAL:
        ok = dbbench_tables_match(data, task_id, actual)
        return Verdict(ok, "Correct: the table is in the expected state." if ok else
                       "Wrong: the table's contents differ from the expected state.")
    ok, reason = reward.snapshots_match(actual, expected_snapshot(data, gold), exact=grading_mode(data) == OFFICIAL)
    return Verdict(ok, "Correct: the tables are in the expected state." if ok else f"Wrong: {reason}.")


def expert_answer(rows: Sequence[Sequence[Any]]) -> str | None:
    """Rows as a JSON answer, when JSON carries them exactly (else None: the expert commits instead)."""
    try:
        text = json.dumps([list(r) for r in rows], ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError):
        return None
    return text if json.loads(text) == [list(r) for r in rows] else None
