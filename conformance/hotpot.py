"""`hotpot_em_f1.jsonl`: HotpotQA answer EM / F1 / precision / recall against hotpot_evaluate_v1.py.

Each line is graded with `envs.qa.reward.score`, the function `QaEnv` grades ``finish[answer]``
with, and agrees when all four numbers equal the reference's within 1e-9. A line that lacks the
inputs or the expected verdict is a disagreement that says what is wrong.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from conformance.report import FileResult
from envs.qa.reward import normalize_answer, score

TOLERANCE = 1e-9
METRICS = ("em", "f1", "precision", "recall")


class HotpotExpected(BaseModel):
    em: float
    f1: float
    precision: float
    recall: float


class HotpotCase(BaseModel):
    """The keys of one vector line that a check needs (the others describe the case)."""

    model_config = ConfigDict(extra="ignore")

    qid: str = ""
    kind: str = ""
    prediction: str
    gold: str
    expected: HotpotExpected


def _problem(line: Any, message: str) -> dict[str, Any]:
    ident = {k: line.get(k) for k in ("qid", "kind") if isinstance(line, dict) and k in line}
    return {**ident, "error": message}


def check_case(case: HotpotCase) -> tuple[bool, dict[str, Any]]:
    """Whether our grading of one case agrees, and the example shown when it does not."""
    ours = score(case.prediction, case.gold)
    got = {m: float(getattr(ours, m)) for m in METRICS}
    want = {m: float(getattr(case.expected, m)) for m in METRICS}
    agrees = all(abs(got[m] - want[m]) <= TOLERANCE for m in METRICS)
    example = {"qid": case.qid, "kind": case.kind, "prediction": case.prediction, "gold": case.gold,
               "ours": got, "expected": want,
               "normalized": {"prediction": normalize_answer(case.prediction), "gold": normalize_answer(case.gold)}}
    return agrees, example


def check(lines: Iterable[dict], data_root: Path) -> FileResult:
    """Grade every line; `data_root` is not needed (predictions and golds are in the lines)."""
    result = FileResult()
    for line in lines:
        try:
            case = HotpotCase.model_validate(line)
        except ValidationError as err:
            first = err.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "line"
            result.add(False, _problem(line, f"not a hotpot vector line: {where}: {first['msg']}"))
            continue
        agrees, example = check_case(case)
        result.add(agrees, example)
    return result
