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
from envs.sql.env import SqlEnv
from envs.types import ToolCall


def _task_id(line: dict[str, Any]) -> str:
    return f"spider-{line['db_id']}-{int(line['question_index']):04d}"


def check(lines: Iterable[dict[str, Any]], data_root: Path) -> FileResult:
    data = SqlEnv.load_data(Path(data_root) / "sql" / "spider", {"tasks": "all"})
    env = SqlEnv(data)
    result = FileResult()
    try:
        for line in lines:
            task_id = _task_id(line)
            expected = bool(line["expected"]["match"])
            case = {"case": task_id, "kind": line.get("kind"), "pred": line["pred"], "expected": expected}
            gold = data.gold.get(task_id)
            if gold is None or (gold.sql or "").strip().rstrip(";").strip() != str(line["gold"]).strip():
                result.add(False, {**case, "ours": None, "note": "the line's gold is not this task's gold"})
                continue
            try:
                env.reset(task_id=task_id)
                env.step(ToolCall(name="execute_sql", arguments={"sql": line["pred"]}))
                step = env.step(ToolCall(name="commit", arguments={}))
            except Exception as err:  # e.g. the gold fails here: a disagreement, not a crash of the run
                env.close()
                result.add(False, {**case, "ours": None, "error": f"{type(err).__name__}: {err}"[:300]})
                continue
            ours = bool(step.info.get("success"))
            result.add(ours == expected, {**case, "ours": ours, "observation": step.observation[:300]})
    finally:
        env.close()
    return result
