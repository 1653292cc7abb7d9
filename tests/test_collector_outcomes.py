"""Honest outcomes: an env bug is an `env_error` (retried once on a fresh session, shown, counted as not
solved, `eval` fails on it), what the agent provokes inside the env is a failure, and a model reply that
cannot be used ends only its own episode (policy error / truncated, the reason stored)."""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import httpx
import pytest
import typer
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from typer.testing import CliRunner

from cli.collect import register
from collector.collect import Collector
from collector.config import JobConfig
from envs.types import Action, StepResult, TaskSpec
from services.app import create_app
from store import Store
from store.scoring import score_run
from tests.support import collector as collector_setup
from tests.support.collector import TARGETS
from tests.support.counter_env import CounterEnv
from tests.support.openai_stub import StubControl, _reply
from tests.support.server import running_server
from wire.errors import EnvServiceError, EnvUnavailable, error_for

env_url = collector_setup.env_url  # fixtures (module-scoped counter env service, scripted model stub)
stub = collector_setup.stub

BROKEN = {f"counter-{i}" for i in range(6)}  # the grader crashes on 6 of the 10 test tasks


class BrokenGraderEnv(CounterEnv):
    """The counter env whose grader raises on some tasks (an env bug, not the agent's doing)."""

    starts: ClassVar[Counter[str]] = Counter()

    def start(self, task: TaskSpec) -> str:
        type(self).starts[task.task_id] += 1
        return super().start(task)

    def act(self, action: Action) -> StepResult:
        assert self.task is not None
        if action.name == "finish" and self.task.task_id in BROKEN:
            raise RuntimeError(f"grader bug: no gold for {self.task.task_id}")
        return super().act(action)


@pytest.fixture(scope="module")
def broken_url() -> Iterator[str]:
    with running_server(create_app(BrokenGraderEnv)) as url:
        yield url


def _app() -> typer.Typer:
    app = typer.Typer()
    register(app)
    return app


def test_error_for_splits_env_bugs_from_infrastructure() -> None:
    assert isinstance(error_for(500, {"detail": "RuntimeError: boom"}), EnvServiceError)
    assert "RuntimeError: boom" in str(error_for(500, {"detail": "RuntimeError: boom"}))
    for status in (502, 503, 504):
        err = error_for(status, "<html>bad gateway</html>")
        assert isinstance(err, EnvUnavailable) and err.status == status


def test_unexpected_env_exception_answers_500_with_its_text_and_keeps_serving(broken_url: str) -> None:
    with httpx.Client(base_url=broken_url) as http:
        sid = http.post("/v1/sessions", json={"task_id": "counter-0"}).json()["session_id"]
        r = http.post(f"/v1/sessions/{sid}/step", json={"action": "finish[5]"})
        assert r.status_code == 500 and r.json() == {"detail": "RuntimeError: grader bug: no gold for counter-0"}
        assert http.get("/healthz").status_code == 200  # same connection, still served
        assert 'trajgym_errors_total{env="counter",status="500"}' in http.get("/metrics").text


def test_env_bug_is_an_env_error_counted_as_not_solved(tmp_path: Path, broken_url: str,
                                                        stub: tuple[str, StubControl]) -> None:
    url, _ = stub
    BrokenGraderEnv.starts.clear()
    db = str(tmp_path / "s.db")
    job = JobConfig(run_name="broken", env=broken_url, model=url, store=db, split="test", concurrency=4,
                    retry_backoff=0.01)
    import asyncio

    summary = asyncio.run(Collector(job).run())
    assert summary.counts == {"env_error": 6, "success": 4}, summary.counts
    assert summary.stats.env_retries == 6
    # each broken task: tried, then retried once on a fresh session
    assert {t: n for t, n in BrokenGraderEnv.starts.items() if t in BROKEN} == {t: 2 for t in BROKEN}
    store = Store(db)
    for ep in store.episodes(summary.run_id):
        if ep["task_id"] in BROKEN:
            assert (ep["outcome"], ep["success"], ep["reward"], ep["attempt"]) == ("env_error", False, None, 2)
            assert "RuntimeError: grader bug: no gold for " + ep["task_id"] in ep["error"]
            assert "retry on a fresh session" in ep["error"]
            turns = store.turns(ep["id"])  # the turns up to the crash are kept
            assert turns[-1]["role"] == "assistant" and "finish[" in turns[-1]["content"]
        else:
            assert ep["outcome"] == "success"
    (score,) = score_run(store, summary.run_id)
    assert (score.episodes, score.successes, score.env_errors, score.infra_errors) == (10, 4, 6, 0)
    assert score.success_rate == pytest.approx(0.4) and score.success_rate_excluding_env_errors == 1.0
    assert score.mean_reward == pytest.approx(0.4)
    # --resume does not run the same crashes again
    again = asyncio.run(Collector(job, resume=True).run())
    assert again.requeued == {"released": 0, "requeued": 0} and again.stats.done == 0

    runner = CliRunner(env={"COLUMNS": "250"})
    res = runner.invoke(_app(), ["eval", "broken", "--store", db])
    assert res.exit_code == 5, res.output
    assert "env errors (not solved)" in res.output and "6 episode(s) ended as env errors" in res.output
    assert "success rate excl. env errors" in res.output
    res = runner.invoke(_app(), ["eval", "broken", "--store", db, "--json"])
    assert res.exit_code == 5
    payload = json.loads(res.stdout)
    (row,) = payload["scores"]
    assert {k: row[k] for k in ("env", "split", "episodes", "env_errors", "infra_errors", "success_rate",
                                "success_rate_excluding_env_errors", "mean_reward")} == {
        "env": "counter", "split": "test", "episodes": 10, "env_errors": 6, "infra_errors": 0, "success_rate": 0.4,
        "success_rate_excluding_env_errors": 1.0, "mean_reward": 0.4}
    res = runner.invoke(_app(), ["eval", "broken", "--store", db, "--json", "--allow-env-errors"])
    assert res.exit_code == 0 and json.loads(res.stdout)["scores"][0]["env_errors"] == 6
    res = runner.invoke(_app(), ["show", "broken", "--store", db, "--list"])
    assert res.exit_code == 0 and "env_error" in res.output and "grader bug" in res.output


def test_dashboard_shows_env_errors(tmp_path: Path, broken_url: str, stub: tuple[str, StubControl]) -> None:
    import asyncio

    from services.dashboard.db import ReadStore
    from services.dashboard.queries import run_summary

    url, _ = stub
    db = str(tmp_path / "d.db")
    job = JobConfig(run_name="dash", env=broken_url, model=url, store=db, split="test", concurrency=4, limit=8,
                    retry_backoff=0.01)
    summary = asyncio.run(Collector(job).run())
    run = run_summary(ReadStore(db), summary.run_id)
    assert (run.env_errors, run.scored, run.successes, run.outcomes["env_error"]) == (6, 8, 2, 6)
    assert run.success_rate == pytest.approx(0.25)


# ----- the agent's own doing inside the env is a failure, never a service error ---------------------
def _scripted_model(replies: list[str]) -> FastAPI:
    """A model that answers the k-th assistant turn of every conversation with replies[k]."""
    api = FastAPI()

    @api.get("/v1/models")
    async def models() -> dict[str, Any]:
        return {"object": "list", "data": [{"id": "scripted", "object": "model"}]}

    @api.post("/v1/chat/completions")
    async def chat(request: Request) -> dict[str, Any]:
        body = await request.json()
        k = sum(1 for m in body["messages"] if m["role"] == "assistant")
        content = replies[min(k, len(replies) - 1)]
        return {"id": f"c{k}", "object": "chat.completion", "model": "scripted",
                "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 10, "completion_tokens": 5}}

    return api


async def test_sql_generated_column_trick_is_a_failure_not_an_error(tmp_path: Path) -> None:
    """An agent adds a VIRTUAL generated column that errors when read, then commits: grading cannot read the
    table. That is the agent's doing: a failure to the agent, never an excluded or env error."""
    from envs.sql.env import SqlEnv

    trick = ("Thought: break the grader.\nAction: execute[ALTER TABLE employees ADD COLUMN boom INTEGER "
             "GENERATED ALWAYS AS (abs(-9223372036854775807 - 1)) VIRTUAL]")
    with running_server(create_app(SqlEnv)) as sql_url, running_server(_scripted_model([trick, "Action: commit"])) as model:
        job = JobConfig(run_name="trick", env=sql_url, model=model, store=str(tmp_path / "s.db"), split="test",
                        task_ids=["builtin-company-raise-00", "builtin-company-raise-05"], concurrency=2,
                        retry_backoff=0.01)
        summary = await Collector(job).run()
    store = Store(job.store)
    episodes = store.episodes(summary.run_id)
    assert [e["outcome"] for e in episodes] == ["failure", "failure"], [(e["outcome"], e["error"]) for e in episodes]
    (score,) = score_run(store, summary.run_id)
    assert (score.episodes, score.successes, score.env_errors, score.infra_errors) == (2, 0, 0, 0)


# ----- model replies that cannot be used end their own episode, the run goes on ---------------------
FAULTS: dict[str, tuple[int, Any]] = {
    "usage_na": (200, "usage"),            # usage.prompt_tokens "n/a"
    "content_list": (200, "content"),      # message.content a list of parts
    "tool_calls_str": (200, "tool_calls"), # message.tool_calls a string
    "no_choices": (200, {"id": "x", "object": "chat.completion"}),
    "not_json": (200, b"<html>upstream says hi</html>"),
    "context": (400, {"object": "error", "message": "The decoder prompt (length 5000) is longer than the maximum "
                                                   "model length of 4096."}),
    "bad_request": (400, {"object": "error", "message": "messages[1].content: invalid value"}),
}
# fault -> (outcome, text the stored reason contains)
EXPECTED = {
    "usage_na": ("policy_error", "usage.prompt_tokens is 'n/a'"),
    "content_list": ("policy_error", "message.content is [{"),
    "tool_calls_str": ("policy_error", "message.tool_calls is 'call add'"),
    "no_choices": ("policy_error", "choices is null"),
    "not_json": ("policy_error", "non-JSON body"),
    "context": ("truncated", "maximum model length"),
    "bad_request": ("policy_error", "model refused the request: model server 400"),
}
_TARGET = re.compile(r"Reach (\d+)")


def _faulty_model(by_target: dict[int, str]) -> FastAPI:
    """The scripted solver, except that tasks whose target is in `by_target` get that fault on every call."""
    api = FastAPI()

    @api.get("/v1/models")
    async def models() -> dict[str, Any]:
        return {"object": "list", "data": [{"id": "solver", "object": "model", "root": "/models/solver",
                                            "created": 123, "revision": "abc123"}]}

    @api.post("/v1/chat/completions")
    async def chat(request: Request) -> Response:
        body = await request.json()
        target = int(_TARGET.search(json.dumps(body["messages"])).group(1))  # type: ignore[union-attr]
        fault = by_target.get(target)
        reply = _reply(body)
        if fault is None:
            return JSONResponse(reply)
        status, shape = FAULTS[fault]
        if shape == "usage":
            reply["usage"]["prompt_tokens"] = "n/a"
        elif shape == "content":
            reply["choices"][0]["message"]["content"] = [{"type": "text", "text": "Action: add[1]"}]
        elif shape == "tool_calls":
            reply["choices"][0]["message"]["tool_calls"] = "call add"
        elif isinstance(shape, bytes):
            return Response(shape, status_code=status, media_type="text/html")
        else:
            return JSONResponse(shape, status_code=status)
        return JSONResponse(reply)

    return api


def test_malformed_model_replies_end_only_their_episode(tmp_path: Path, env_url: str) -> None:
    tasks = sorted(TARGETS, key=lambda t: int(t.split("-")[1]))[:10]
    faulty = dict(zip(tasks, FAULTS))  # the first 7 tasks each get one fault, the last 3 none
    by_target = {TARGETS[t]: f for t, f in faulty.items()}
    assert len(by_target) == len(faulty)  # targets tell the tasks apart
    db = str(tmp_path / "m.db")
    with running_server(_faulty_model(by_target)) as model:
        res = CliRunner(env={"COLUMNS": "250"}).invoke(_app(), [
            "collect", "--env", env_url, "--model", model, "--split", "test", "--store", db, "--run-name", "m",
            "--concurrency", "4", "--quiet"])
    assert res.exit_code == 0, res.output
    store = Store(db)
    episodes = {e["task_id"]: e for e in store.episodes(store.get_run("m")["id"])}
    assert all(e["status"] == "done" for e in episodes.values())
    for task, fault in faulty.items():
        ep = episodes[task]
        outcome, reason = EXPECTED[fault]
        assert ep["outcome"] == outcome and reason in ep["error"], (fault, ep["outcome"], ep["error"])
        assert ep["success"] is False and ep["reward"] == 0.0 and ep["attempt"] == 1
    for task in set(tasks) - set(faulty):
        assert episodes[task]["outcome"] == "success"
    (score,) = score_run(store, store.get_run("m")["id"])
    assert (score.episodes, score.successes, score.policy_errors, score.truncated, score.infra_errors) == (10, 3, 6, 1, 0)


# ----- what each turn keeps of the env and of the model call ---------------------------------------
async def test_turns_keep_env_info_progress_truncation_invalid_actions_and_timings(
        tmp_path: Path, env_url: str, stub: tuple[str, StubControl]) -> None:
    url, _ = stub
    # looper: adds 1 forever, until the env's own turn limit (20) truncates the episode
    job = JobConfig(run_name="loop", env=env_url, model=url, model_name="looper", store=str(tmp_path / "t.db"),
                    split="test", task_ids=["counter-2", "counter-3"], concurrency=2, model_concurrency=1)
    summary = await Collector(job).run()
    store = Store(job.store)
    for ep in store.episodes(summary.run_id):
        turns = store.turns(ep["id"])
        observations = [t for t in turns[2:] if t["role"] == "user"]
        assert ep["outcome"] == "truncated" and ep["turns"] == 20 == len(observations)
        assert [t["truncated"] for t in observations] == [False] * 19 + [True]
        assert observations[-1]["info"] == {"success": False, "progress": observations[-1]["progress"]}
        target = TARGETS[ep["task_id"]]
        assert [t["progress"] for t in observations] == [min(1.0, k / target) for k in range(1, 21)]
        assert all(t["env_ms"] > 0 and t["invalid_action"] is False for t in observations)
        assert turns[1]["env_ms"] > 0  # the session's creation
        assistants = [t for t in turns if t["role"] == "assistant"]
        assert all(t["latency_ms"] > 0 and t["queue_ms"] >= 0 and t["seed"] is not None for t in assistants)
    queued = [t["queue_ms"] for e in store.episodes(summary.run_id) for t in store.turns(e["id"]) if t["role"] == "assistant"]
    assert max(queued) > 0  # two episodes, one model slot: some calls waited for it
    # a tool call the env refuses (422) is fed back and flagged
    job = JobConfig(run_name="bad", env=env_url, model=url, model_name="badtool", prompt_format="tools",
                    store=str(tmp_path / "t.db"), split="test", task_ids=["counter-0"], max_parse_retries=1)
    summary = await Collector(job).run()
    (ep,) = store.episodes(summary.run_id)
    feedback = [t for t in store.turns(ep["id"]) if t["role"] == "tool"]
    assert ep["outcome"] == "policy_error" and feedback and all(t["invalid_action"] is True for t in feedback)


async def test_an_action_too_large_for_the_service_is_fed_back_not_infrastructure(tmp_path: Path, env_url: str) -> None:
    huge = "Thought: flood it.\nAction: add[" + "1" * 1_200_000 + "]"  # over the service's 1 MiB body limit: 413
    with running_server(_scripted_model([huge, "Action: finish[0]"])) as model:
        job = JobConfig(run_name="huge", env=env_url, model=model, store=str(tmp_path / "h.db"), split="test",
                        task_ids=["counter-0"], retry_backoff=0.01)
        summary = await Collector(job).run()
    store = Store(job.store)
    (ep,) = store.episodes(summary.run_id)
    assert (ep["outcome"], ep["turns"], ep["attempt"]) == ("failure", 1, 1)
    feedback = store.turns(ep["id"])[3]
    assert feedback["invalid_action"] is True and "too large" in feedback["content"]
