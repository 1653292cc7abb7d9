"""AgentBench DB-bench vectors (``dbbench.jsonl``) against the SQL env's default grading.

Each line is one task of ``sql/dbbench/standard.jsonl`` under `data_root` (``task_index`` = its
0-based line) with AgentBench's verdict. The check plays it in the env as an agent would, in the
env's default modes except that no task is withheld (``tasks=all``):

* question tasks: a session, then ``submit_answer`` with the line's answer text;
* data changes: a session, ``execute_sql`` with each of the line's statements in order, then
  ``commit`` (which grades the task's table).
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
    return f"dbbench-standard-{int(line['task_index']):03d}"


def _play(env: SqlEnv, task_id: str, line: dict[str, Any]) -> StepResult:
    env.reset(task_id=task_id)
    if "statements" in line:
        for statement in line["statements"]:
            env.step(ToolCall(name="execute_sql", arguments={"sql": statement}))
        return env.step(ToolCall(name="commit", arguments={}))
    return env.step(ToolCall(name="submit_answer", arguments={"answer": line["answer"]}))


def _prepare(line: dict[str, Any], data: Any) -> Prepared:
    task_id = _task_id(line)
    case: dict[str, Any] = {"case": task_id, "kind": f"{'modification' if 'statements' in line else 'question'}/"
                            f"{line.get('kind')}"}
    case.update({"statements": line["statements"]} if "statements" in line else {"answer": line.get("answer")})
    gold = data.gold.get(task_id)
    if gold is None:
        return task_id, case, "no such task"
    if "statements" not in line and gold.label != line.get("label", gold.label):
        return task_id, case, "the line's label is not this task's label"
    return task_id, case, None


def check(lines: Iterable[dict[str, Any]], data_root: Path) -> FileResult:
    return check_sql(lines, Path(data_root) / "sql" / "dbbench", _prepare, _play)
