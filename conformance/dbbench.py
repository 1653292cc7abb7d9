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


def check(lines: Iterable[dict[str, Any]], data_root: Path) -> FileResult:
    data = SqlEnv.load_data(Path(data_root) / "sql" / "dbbench", {"tasks": "all"})
    env = SqlEnv(data)
    result = FileResult()
    try:
        for line in lines:
            task_id = _task_id(line)
            expected = bool(line["expected"]["match"])
            gold = data.gold.get(task_id)
            case: dict[str, Any] = {"case": task_id, "kind": f"{'modification' if 'statements' in line else 'question'}/"
                                    f"{line.get('kind')}", "expected": expected}
            if gold is None:
                result.add(False, {**case, "ours": None, "note": "no such task"})
                continue
            if "statements" not in line and gold.label != line.get("label", gold.label):
                result.add(False, {**case, "answer": line.get("answer"), "ours": None,
                                   "note": "the line's label is not this task's label"})
                continue
            try:
                step = _play(env, task_id, line)
            except Exception as err:  # e.g. the gold fails here: a disagreement, not a crash of the run
                env.close()
                result.add(False, {**case, "ours": None, "error": f"{type(err).__name__}: {err}"[:300]})
                continue
            case.update({"statements": line["statements"]} if "statements" in line else {"answer": line["answer"]})
            ours = bool(step.info.get("success"))
            result.add(ours == expected, {**case, "ours": ours, "observation": step.observation[:300]})
    finally:
        env.close()
    return result
