"""The loop the two SQL vector files share: play each line's task in the SQL env, compare its verdict.

`check_sql(lines, data_dir, prepare, play)` loads the SQL env's data in its default modes except that
no task is withheld (``tasks=all``), then for each line: `prepare(line, data)` names the task, the case
record and, where the line does not fit the task, why (a disagreement); `play(env, task_id, line)`
acts as an agent would and returns the grading step, whose ``info["success"]`` is compared with the
line's expected match. An env error on a line is a disagreement, not a crash of the run.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from conformance.report import FileResult
from envs.sql.env import SqlEnv
from envs.types import StepResult

Prepared = tuple[str, dict[str, Any], str | None]  # task id, case record, why the line does not fit (or None)


def check_sql(lines: Iterable[dict[str, Any]], data_dir: Path, prepare: Callable[[dict[str, Any], Any], Prepared],
              play: Callable[[SqlEnv, str, dict[str, Any]], StepResult]) -> FileResult:
    data = SqlEnv.load_data(data_dir, {"tasks": "all"})
    env = SqlEnv(data)
    result = FileResult()
    try:
        for line in lines:
            task_id, case, misfit = prepare(line, data)
            expected = bool(line["expected"]["match"])
            case = {**case, "expected": expected}
            if misfit is not None:
                result.add(False, {**case, "ours": None, "note": misfit})
                continue
            try:
                step = play(env, task_id, line)
            except Exception as err:  # e.g. the gold fails here: a disagreement, not a crash of the run
                env.close()
                result.add(False, {**case, "ours": None, "error": f"{type(err).__name__}: {err}"[:300]})
                continue
            ours = bool(step.info.get("success"))
            result.add(ours == expected, {**case, "ours": ours, "observation": step.observation[:300]})
    finally:
        env.close()
    return result
