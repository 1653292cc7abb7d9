"""HotpotQA grading against hotpot_evaluate_v1.py: the shared vectors (checker and env), empty answers, modes."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import conformance.hotpot as hotpot_check
import envs.qa.env as qa_env_module
from clients.env_client import AsyncEnvClient
from envs.base import ModeError
from envs.qa.data import QaData, QaQuestion
from envs.qa.env import QaEnv
from envs.qa.reward import score
from services.app import create_app
from tests.support.server import running_server

VECTORS = Path(__file__).resolve().parents[1].parent / "shared" / "conformance" / "hotpot_em_f1.jsonl"
METRICS = ("em", "f1", "precision", "recall")


def vector_lines() -> list[dict[str, Any]]:
    if not VECTORS.is_file():
        pytest.skip(f"{VECTORS} is absent (the shared conformance vectors are not on this machine)")
    with VECTORS.open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


@pytest.fixture(scope="module")
def builtin() -> QaData:
    return QaEnv.load_data(None)


def finished(env: QaEnv, action: str | dict[str, Any], task_id: str = "builtin-001") -> dict[str, Any]:
    env.reset(task_id=task_id)
    result = env.step(action)
    return {"done": result.done, "reward": result.reward, "observation": result.observation, **result.info}


# ----- the shared vectors ---------------------------------------------------------
def test_hotpot_vectors_agree_fully_through_the_checker() -> None:
    lines = vector_lines()
    result = hotpot_check.check(iter(lines), Path("/nonexistent"))
    assert result.cases == len(lines) == 5000
    assert result.agree == result.cases, result.examples[:3]
    assert result.full and result.examples == []


def test_checker_grades_with_the_envs_own_function() -> None:
    assert hotpot_check.score is qa_env_module.score is score


def test_hotpot_vectors_agree_through_env_episodes() -> None:
    """Every vector as one episode: the gold as a task, `finish[prediction]` (text and tool call) graded by the env."""
    lines = vector_lines()
    golds: dict[str, str] = {}
    for line in lines:
        assert golds.setdefault(line["qid"], line["gold"]) == line["gold"]
    corpus = QaEnv.load(None).corpus
    questions = [QaQuestion(qid=qid, question=f"question {qid}", answer=gold) for qid, gold in golds.items()]
    env = QaEnv(QaData(questions, corpus))
    disagreements = []
    for n, line in enumerate(lines):
        forms: list[str | dict[str, Any]] = [f"finish[{line['prediction']}]"]
        if n % 5 == 0:
            forms.append({"name": "finish", "arguments": {"answer": line["prediction"]}})
        for form in forms:
            got = finished(env, form, line["qid"])
            want = line["expected"]
            ok = got["done"] and got["reward"] == want["em"] and got["success"] == (want["em"] == 1)
            ok = ok and all(abs(got[m] - want[m]) <= 1e-9 for m in METRICS)
            if not ok:
                disagreements.append((line["kind"], line["prediction"], line["gold"], {m: got.get(m) for m in METRICS}))
    assert not disagreements, disagreements[:5]


# ----- the checker on bad lines -------------------------------------------------------
def test_checker_reports_wrong_and_unusable_lines() -> None:
    good = {"qid": "q1", "kind": "identity", "prediction": "Paris", "gold": "paris",
            "expected": {"em": 1, "f1": 1.0, "precision": 1.0, "recall": 1.0}}
    wrong = {**good, "qid": "q2", "expected": {"em": 0, "f1": 0.5, "precision": 1.0, "recall": 1.0}}
    missing = {"qid": "q3", "kind": "x", "prediction": "Paris"}
    typed = {**good, "qid": "q4", "prediction": 7}

    def lines() -> Iterator[dict[str, Any]]:
        yield from (good, wrong, missing, typed)

    result = hotpot_check.check(lines(), Path("."))
    assert (result.cases, result.agree) == (4, 1)
    wrong_ex, missing_ex, typed_ex = result.examples
    assert wrong_ex["qid"] == "q2" and wrong_ex["ours"]["em"] == 1.0 and wrong_ex["expected"]["em"] == 0.0
    assert missing_ex["qid"] == "q3" and "gold" in missing_ex["error"]
    assert typed_ex["qid"] == "q4" and "prediction" in typed_ex["error"]


# ----- empty answers: graded as the official script would --------------------------
def test_empty_finish_is_graded_zero_by_default(builtin: QaData) -> None:
    env = QaEnv(builtin)
    for action in ["finish[]", "finish[   ]", {"name": "finish", "arguments": {"answer": ""}}]:
        got = finished(env, action)
        assert got["done"] is True and got["reward"] == 0.0 and got["success"] is False, action
        assert (got["em"], got["f1"], got["precision"], got["recall"]) == (0.0, 0.0, 0.0, 0.0)
        assert got["observation"] == "Episode finished, reward = 0\n"
        assert env.done and env.turns == 1


def test_scores_match_the_official_script_on_edge_cases() -> None:
    # An empty prediction against a gold that normalises to nothing is an exact match with F1 0
    # (hotpot_evaluate_v1: EM compares normalised strings; F1 has no shared token).
    assert score("", "The").model_dump() == {"em": 1.0, "f1": 0.0, "precision": 0.0, "recall": 0.0}
    assert score("", "Paris").model_dump() == {"em": 0.0, "f1": 0.0, "precision": 0.0, "recall": 0.0}
    assert score("no", "No.").em == 1.0 and score("yes", "no").f1 == 0.0
    assert score("the Paris France", "Paris").model_dump() == {"em": 0.0, "f1": 2 / 3, "precision": 0.5, "recall": 1.0}


def test_lenient_grading_refuses_an_empty_answer() -> None:
    data = QaEnv.load_data(None, {"grading": "lenient"})
    env = QaEnv(data)
    env.reset(task_id="builtin-001")
    r = env.step("finish[ ]")
    assert not r.done and r.info["invalid_action"] is True and "Empty answer" in r.observation
    r = env.step("finish[Brackwater]")
    assert r.done and r.reward == 1.0 and r.info["success"] is True
    assert QaEnv.info(data).modes == {"grading": "lenient", "observation": "react", "parsing": "strict"}
    with pytest.raises(ModeError):
        QaEnv.load_data(None, {"grading": "generous"})


def test_default_mode_is_official(builtin: QaData) -> None:
    info = QaEnv.info(builtin)
    assert info.modes == {"grading": "official", "observation": "react", "parsing": "strict"}
    assert info.mode_choices == {"grading": ["official", "lenient"], "observation": ["react", "sentences"],
                                 "parsing": ["strict", "lenient"]}


async def test_empty_finish_graded_zero_over_http(builtin: QaData) -> None:
    app = create_app(QaEnv, data=builtin)
    with running_server(app) as url:
        async with AsyncEnvClient(url) as client:
            assert (await client.info()).modes["grading"] == "official"
            for action in ["finish[]", {"name": "finish", "arguments": {"answer": ""}}]:
                sid = (await client.create(task_id="builtin-005")).session_id
                result = await client.step(sid, action)
                assert result.done and result.reward == 0.0
                assert result.info["success"] is False and result.info["em"] == 0.0 and result.info["f1"] == 0.0
                assert (await client.state(sid)).turns == 1
