"""Spider execution-match vectors (``spider_exec.jsonl``) against the SQL env's default grading.

Each line is one predicted query for one question of ``sql/spider/questions.json`` under
`data_root`, with test-suite-sql-eval's verdict. The check plays it in the env as an agent
would: a session on the question's task, ``execute_sql`` with the prediction, then ``commit``
(which grades the last query) — the env's default modes, except that no task is withheld
(``tasks=all``: the vectors also cover questions whose gold result is empty).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from conformance.report import FileResult
from conformance.sql_cases import Prepared, check_sql
from envs.sql.env import SqlEnv
from envs.types import StepResult, ToolCall


def _task_id(line: dict[str, Any]) -> str:
    return f"spider-{line['db_id']}-{int(line['question_index']):04d}"


def _prepare(line: dict[str, Any], data: Any) -> Prepared:
    task_id = _task_id(line)
    case = {"case": task_id, "kind": line.get("kind"), "pred": line["pred"]}
    gold = data.gold.get(task_id)
    if gold is None or (gold.sql or "").strip().rstrip(";").strip() != str(line["gold"]).strip():
        return task_id, case, "the line's gold is not this task's gold"
    return task_id, case, None


def _play(env: SqlEnv, task_id: str, line: dict[str, Any]) -> StepResult:
    env.reset(task_id=task_id)
    env.step(ToolCall(name="execute_sql", arguments={"sql": line["pred"]}))
    return env.step(ToolCall(name="commit", arguments={}))


def check(lines: Iterable[dict[str, Any]], data_root: Path) -> FileResult:
    return check_sql(lines, Path(data_root) / "sql" / "spider", _prepare, _play)
