"""Scoring from stored rows (hand-computed), runs side by side, `trajgym eval` and a suite run end to end."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from tests.support.synthetic_store import EpisodeSpec, build_run
from store.scoring import eval_payload, score_run, score_runs
from store import Store


def _e(task: str, sample: int, outcome: str, reward: float | None, turns: int, progress: float | None = None,
       split: str = "train") -> EpisodeSpec:
    success = None if outcome == "infra_error" else outcome == "success"
    return EpisodeSpec(task, split=split, sample=sample, outcome=outcome, reward=reward, success=success,
                       progress=progress, turns=turns)


RUN_A = [
    _e("ta", 0, "success", 1.0, 2, 1.0), _e("ta", 1, "failure", 0.5, 3, 0.5), _e("ta", 2, "success", 1.0, 2),
    _e("ta", 3, "truncated", 0.0, 7, 0.25), _e("ta", 4, "infra_error", None, 0),
    _e("tb", 0, "success", 1.0, 4), _e("tb", 1, "policy_error", 0.0, 1),            # tb sample 2..4 pending
    _e("tc", 0, "failure", 0.0, 3, split="test"), _e("tc", 1, "failure", 0.0, 5, split="test"),
]
RUN_B = [_e("ta", 0, "success", 1.0, 1), _e("tc", 0, "success", 0.6, 2, split="test")]
TASKS = [("ta", "train"), ("tb", "train"), ("tc", "test")]


@pytest.fixture()
def store(tmp_path: Path) -> Store:
    s = Store(str(tmp_path / "scores.db"))
    build_run(s, "A", RUN_A, tasks=TASKS, samples=5, model="model-a")
    build_run(s, "B", RUN_B, tasks=TASKS, samples=1, model="model-b")
    yield s
    s.close()


def _pass(n: int, c: int, k: int) -> float:
    return 1 - math.comb(n - c, k) / math.comb(n, k)


def test_score_run_by_hand(store: Store) -> None:
    test, train = score_run(store, store.get_run("A")["id"])  # ordered by env, then split name
    assert (train.env, train.split, test.split) == ("counter", "train", "test")
    # train: ta scored 4 (2 successes; the infra error is excluded), tb scored 2 (1 success), tb has 3 pending
    assert (train.tasks, train.episodes, train.successes) == (2, 6, 3)
    assert train.success_rate == pytest.approx(3 / 6)
    assert train.mean_reward == pytest.approx((1 + 0.5 + 1 + 0 + 1 + 0) / 6)
    assert train.mean_progress == pytest.approx((1.0 + 0.5 + 0.25) / 3)
    assert train.mean_turns == pytest.approx((2 + 3 + 2 + 7 + 4 + 1) / 6)
    assert (train.failures, train.truncated, train.policy_errors, train.infra_errors, train.unfinished) == \
        (1, 1, 1, 1, 3)
    assert train.max_samples == 4
    assert train.pass_at_k == {"1": pytest.approx((_pass(4, 2, 1) + _pass(2, 1, 1)) / 2),
                               "2": pytest.approx((_pass(4, 2, 2) + _pass(2, 1, 2)) / 2),
                               "4": pytest.approx(_pass(4, 2, 4))}
    assert train.pass_at_k_tasks == {"1": 2, "2": 2, "4": 1}
    # test: tc 2 failures, 3 pending
    assert (test.episodes, test.successes, test.success_rate, test.mean_reward) == (2, 0, 0.0, 0.0)
    assert test.pass_at_k == {"1": 0.0, "2": 0.0} and test.unfinished == 3


def test_eval_payload_side_by_side(store: Store) -> None:
    runs = score_runs(store, ["A", "B"])
    payload = eval_payload(runs)
    assert [r["run"] for r in payload["runs"]] == ["A", "B"] and "scores" not in payload
    b = {(s["env"], s["split"]): s for s in payload["runs"][1]["scores"]}
    assert b[("counter", "test")]["mean_reward"] == pytest.approx(0.6)
    assert b[("counter", "train")]["pass_at_k"] == {}  # one sample per task: no pass@k
    for run in payload["runs"]:
        for s in run["scores"]:
            assert {"success_rate", "mean_reward", "episodes", "infra_errors"} <= set(s)
    single = eval_payload(score_runs(store, ["A"]))
    assert single["run"] == "A" and single["scores"] == single["runs"][0]["scores"]


def test_score_model_pools_all_runs_of_a_model(store: Store) -> None:
    from store.scoring import score_model

    build_run(store, "A2", [_e("tc", 0, "success", 1.0, 1, split="test")], tasks=TASKS, samples=1, model="model-a")
    [pooled] = score_model(store, "model-a")
    assert pooled.model == "model-a" and "A" in pooled.run and "A2" in pooled.run
    test, train = pooled.scores
    # test: tc has 2 failures (A) + 1 success (A2) -> n=3, c=1
    assert (test.episodes, test.successes) == (3, 1)
    assert test.success_rate == pytest.approx(1 / 3)
    assert test.pass_at_k == {"1": pytest.approx(1 / 3), "2": pytest.approx(_pass(3, 1, 2)),
                              "3": pytest.approx(1.0)}
    assert (train.episodes, train.unfinished, test.unfinished) == (6, 3 + 2, 3)
    from store import RunNotFound

    with pytest.raises(RunNotFound):
        score_model(store, "nobody")


def test_runs_under_different_modes_are_never_pooled(store: Store) -> None:
    """A run collected under grading=official and one stored before modes were recorded (legacy) stay apart."""
    from sqlalchemy import update

    from store.models import Run
    from store.scoring import eval_payload, mixed_modes, run_modes, score_model, score_runs

    build_run(store, "A2", [_e("tc", 0, "success", 1.0, 1, split="test")], tasks=TASKS, samples=1, model="model-a")
    with store.engine.begin() as conn:
        conn.execute(update(Run).where(Run.name == "A2").values(provenance={"env": {"name": "webshop", "modes": {"grading": "official"}}}))
    assert run_modes(store.get_run("A")) == {"grading": "legacy"}
    assert run_modes(store.get_run("A2")) == {"grading": "official"}
    groups = score_model(store, "model-a")
    assert sorted(g.modes["grading"] for g in groups) == ["legacy", "official"]
    official = next(g for g in groups if g.modes["grading"] == "official")
    assert "A2" in official.run and "(A)" not in official.run
    assert sum(s.episodes for s in official.scores) == 1
    runs = score_runs(store, ["A", "A2"])
    assert mixed_modes(runs) and eval_payload(runs)["mixed_modes"] is True
    assert not mixed_modes(score_runs(store, ["A"]))


def _app() -> Any:
    from cli.collect import register

    app = typer.Typer()

    @app.callback()
    def _root() -> None:
        """test app"""

    register(app)
    return app


def test_eval_cli_json_table_and_unknown_run(store: Store) -> None:
    runner = CliRunner()
    res = runner.invoke(_app(), ["eval", "A", "B", "--store", store.url, "--json"])
    assert res.exit_code == 0, res.output
    payload = json.loads(res.stdout)
    assert payload == json.loads(json.dumps(eval_payload(score_runs(store, ["A", "B"]))))
    res = runner.invoke(_app(), ["eval", "A", "B", "--store", store.url])
    assert res.exit_code == 0, res.output
    assert "pass@4" in res.output and "model-a" in res.output and "model-b" in res.output
    res = runner.invoke(_app(), ["eval", "A", "--store", store.url])
    assert res.exit_code == 0 and "50.0%" in res.output
    res = runner.invoke(_app(), ["eval", "--model-name", "model-b", "--store", store.url, "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["runs"][0]["model"] == "model-b"
    res = runner.invoke(_app(), ["eval", "A", "nope", "--store", store.url])
    assert res.exit_code == 2 and "nope" in res.output
    res = runner.invoke(_app(), ["eval", "--store", store.url])
    assert res.exit_code == 2


def test_builtin_suites_are_fixed_test_ids_of_the_builtin_data() -> None:
    from collector.suites import SUITES
    from envs.registry import load_class
    from envs.types import Split

    for suite in SUITES.values():
        assert suite.split == "test" and len(set(suite.task_ids)) == len(suite.task_ids)
        if suite.data != "builtin":
            continue
        data = load_class(suite.env).load(None)
        assert set(suite.task_ids) <= set(data.task_ids(Split.test)), suite.name


def test_published_suites_name_tasks_of_the_published_data() -> None:
    from collector.suites import SUITES
    from envs.registry import load_class
    from envs.types import Split

    shared = Path(__file__).resolve().parents[2] / "shared" / "data"
    if not shared.is_dir():
        pytest.skip(f"published data not found at {shared}")
    folders = {"webshop": "webshop", "household": "alfworld", "sql": "sql", "qa": "qa"}
    for suite in SUITES.values():
        if suite.data == "published":
            data = load_class(suite.env).load(shared / folders[suite.env])
            assert set(suite.task_ids) <= set(data.task_ids(Split.test)), suite.name


def test_suite_runs_a_model_and_writes_one_report(counter_url: str, tmp_path: Path) -> None:
    from tests.support.openai_stub import create_stub
    from tests.support.server import running_server

    suite_file = tmp_path / "counter-suite.yaml"
    suite_file.write_text("name: counter-mini\nenv: counter\ndescription: three test tasks\nsamples: 2\n"
                          "task_ids: [counter-0, counter-1, counter-2]\n")
    db = tmp_path / "suite.db"
    report_path = tmp_path / "report.json"
    app, _control = create_stub()
    runner = CliRunner()
    with running_server(app) as model_url:
        args = ["eval", "--suite", str(suite_file), "--env", counter_url, "--model", model_url, "--temperature", "0.8",
                "--store", str(db), "--run-name", "suite-run", "--report", str(report_path), "--concurrency", "4"]
        res = runner.invoke(_app(), args)
        assert res.exit_code == 0, res.output
        again = runner.invoke(_app(), args)  # same run: resumes, nothing left to do, same scores
        assert again.exit_code == 0, again.output
    report = json.loads(report_path.read_text())
    assert report["suite"] == "counter-mini" and report["run"] == "suite-run" and report["model"] == "solver"
    assert report["complete"] is True and report["missing"] == [] and report["samples"] == 2
    assert [t["task_id"] for t in report["per_task"]] == ["counter-0", "counter-1", "counter-2"]
    (score,) = report["scores"]
    assert (score["env"], score["split"], score["episodes"], score["infra_errors"]) == ("counter", "test", 6, 0)
    assert score["success_rate"] == 1.0 and score["pass_at_k"] == {"1": 1.0, "2": 1.0}
    # the report is reproducible from the stored rows alone
    s = Store(str(db))
    try:
        from collector.suites import get_suite, suite_report

        again_report = suite_report(s, get_suite(str(suite_file)), "suite-run")
    finally:
        s.close()
    assert again_report.scores == report["scores"]


def test_suite_refuses_another_env_or_unknown_ids(counter_url: str, tmp_path: Path) -> None:
    runner = CliRunner()
    res = runner.invoke(_app(), ["eval", "--suite", "sql-builtin-test", "--env", counter_url, "--model",
                                 "http://127.0.0.1:9/v1", "--store", str(tmp_path / "x.db")])
    assert res.exit_code == 2 and "is for env 'sql'" in res.output
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\nenv: counter\ntask_ids: [counter-0, counter-999]\n")
    res = runner.invoke(_app(), ["eval", "--suite", str(bad), "--env", counter_url, "--model",
                                 "http://127.0.0.1:9/v1", "--store", str(tmp_path / "x.db")])
    assert res.exit_code == 2 and "counter-999" in res.output
    res = runner.invoke(_app(), ["eval", "--suite", "no-such-suite", "--store", str(tmp_path / "x.db")])
    assert res.exit_code == 2 and "unknown suite" in res.output
    res = runner.invoke(_app(), ["eval", "A", "--suite", "sql-builtin-test", "--store", str(tmp_path / "x.db")])
    assert res.exit_code == 2 and "not both" in res.output
    res = runner.invoke(_app(), ["eval", "--suite", "sql-builtin-test", "--store", str(tmp_path / "x.db")])
    assert res.exit_code == 2 and "--env" in res.output


def test_suite_with_the_expert_policy_gives_a_reference_score(counter_url: str, tmp_path: Path) -> None:
    suite_file = tmp_path / "s.json"
    suite_file.write_text(json.dumps({"name": "counter-two", "env": "counter", "task_ids": ["counter-3", "counter-4"]}))
    res = CliRunner().invoke(_app(), ["eval", "--suite", str(suite_file), "--env", counter_url, "--policy", "expert",
                                      "--store", str(tmp_path / "e.db"), "--run-name", "ref", "--json",
                                      "--report", str(tmp_path / "ref.json")])
    assert res.exit_code == 0, res.output
    report = json.loads(res.stdout)
    assert report == json.loads((tmp_path / "ref.json").read_text())
    assert report["policy"] == "expert" and report["model"] is None
    assert [(t["task_id"], t["samples"], t["successes"]) for t in report["per_task"]] == [("counter-3", 1, 1),
                                                                                         ("counter-4", 1, 1)]


def test_export_sidecar_names_the_modes_of_a_legacy_run() -> None:
    from collector.export.pipeline import runs_provenance

    prov = {"env": {"modes": {"grading": "official"}}}
    assert runs_provenance([{"name": "old", "provenance": None}, {"name": "new", "provenance": prov}]) == {
        "old": {"recorded": False, "env": {"modes": {"grading": "legacy"}}}, "new": prov}
