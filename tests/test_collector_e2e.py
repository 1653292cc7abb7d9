"""End to end: real uvicorn env service (CounterEnv) + scripted OpenAI stub on loopback, both prompt
formats, the expert, every scored outcome, vLLM extras negotiation, and the CLI commands."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from cli.collect import register
from collector.config import JobConfig
from collector.collect import Collector
from store.scoring import score_run
from store import Store
from tests.support import collector as collector_setup
from tests.support.collector import TARGETS
from tests.support.counter_env import CounterData, CounterEnv
from tests.support.openai_stub import StubControl

env_url = collector_setup.env_url  # fixtures (module-scoped counter env service, scripted model stub)
stub = collector_setup.stub


def _job(tmp_path: Path, env_url: str, model_url: str | None, **kw: object) -> JobConfig:
    base: dict[str, object] = {"run_name": "r1", "env": env_url, "model": model_url, "store": str(tmp_path / "s.db"),
                               "split": "test", "samples": 2, "concurrency": 4, "retry_backoff": 0.01,
                               "sampling": {"temperature": 0.7, "seed": 11}}
    base.update(kw)
    return JobConfig.model_validate(base)


def _check_episode_common(ep: dict, run_id: int, model: str | None) -> None:
    assert ep["run_id"] == run_id and ep["env"] == "counter" and ep["split"] == "test"
    assert ep["status"] == "done" and ep["attempt"] == 1 and ep["claims"] == 1 and ep["lease_until"] is None
    assert ep["model"] == model and ep["worker"] and ep["error"] is None
    assert ep["started_at"] is not None and ep["finished_at"] >= ep["started_at"] and ep["duration_s"] > 0
    assert ep["env_time_s"] > 0 and ep["env_time_s"] <= ep["duration_s"]


async def test_react_rows_field_by_field(tmp_path: Path, env_url: str, stub: tuple[str, StubControl]) -> None:
    url, control = stub
    job = _job(tmp_path, env_url, url)
    summary = await Collector(job).run()
    assert summary.created and summary.counts == {"success": 20} and summary.stats.success == 20
    store = Store(job.store)
    run = store.get_run("r1")
    assert (run["env"], run["model"], run["policy"], run["prompt_format"], run["total_episodes"]) == ("counter", "solver", "model", "react", 20)
    assert run["config_hash"] == job.config_hash("counter", "solver") and run["config"]["samples"] == 2
    episodes = store.episodes(run["id"])
    assert sorted((e["task_id"], e["sample"]) for e in episodes) == sorted((f"counter-{i}", s) for i in range(10) for s in (0, 1))
    for ep in episodes:
        _check_episode_common(ep, run["id"], "solver")
        steps = math.ceil(TARGETS[ep["task_id"]] / 9) + 1
        assert (ep["outcome"], ep["reward"], ep["success"], ep["progress"], ep["turns"]) == ("success", 1.0, True, 1.0, steps)
        assert ep["model_time_s"] > 0
        turns = store.turns(ep["id"])
        assert [t["idx"] for t in turns] == list(range(2 + 2 * steps))
        assert [t["role"] for t in turns] == ["system", "user"] + ["assistant", "user"] * steps
        assert "add[{amount}]" in turns[0]["content"] and "Thought:" in turns[0]["content"]
        assert turns[1]["observation"].startswith(f"Reach {TARGETS[ep['task_id']]}") and turns[1]["reward"] is None
        assistants = [t for t in turns if t["role"] == "assistant"]
        assert ep["prompt_tokens"] == sum(t["prompt_tokens"] for t in assistants)
        assert ep["completion_tokens"] == sum(t["completion_tokens"] for t in assistants)
        for k, (a, obs) in enumerate(zip(turns[2::2], turns[3::2]), start=1):
            assert a["step"] == obs["step"] == k and a["finish_reason"] == "stop" and a["latency_ms"] > 0
            assert len(a["token_ids"]) == len(a["logprobs"]) == a["completion_tokens"] > 0
            assert len(a["prompt_token_ids"]) == a["prompt_tokens"] > 0 and a["tool_calls"] is None
            assert obs["action"] == a["content"].split("Action: ")[1]
            assert obs["content"].startswith("Observation: " + obs["observation"])
            assert obs["done"] == (k == steps) and obs["reward"] == (1.0 if k == steps else 0.0)
        # what was stored is exactly what the model was sent, with the sampling and per-call seeds sent
        sent = [{"role": t["role"], "content": t["content"]} for t in turns[:-2]]
        assert any(r["messages"] == sent for r in control.requests)
        sampling = ep["sampling"]
        assert (sampling["temperature"], sampling["top_p"], sampling["max_tokens"]) == (0.7, 1.0, 512)
        assert [a["seed"] for a in turns[2::2]] == [sampling["seed"] + k for k in range(steps)]
        assert any(r["messages"] == sent and r["seed"] == sampling["seed"] + steps - 1 and r["temperature"] == 0.7
                   for r in control.requests)
        assert all(o["env_ms"] > 0 and o["invalid_action"] is False and o["truncated"] is False for o in turns[3::2])
        assert turns[-1]["info"] == {"success": True, "progress": 1.0} and turns[-1]["progress"] == 1.0
    assert all(r["logprobs"] is True and r["return_token_ids"] is True and "tools" not in r for r in control.requests)
    seeds = {(e["task_id"], e["sample"]): e["sampling"]["seed"] for e in episodes}
    assert len(set(seeds.values())) == 20  # one seed per task × sample
    (score,) = score_run(store, run["id"])
    assert (score.episodes, score.success_rate, score.mean_reward, score.infra_errors) == (20, 1.0, 1.0, 0)


async def test_tools_rows_field_by_field(tmp_path: Path, env_url: str, stub: tuple[str, StubControl]) -> None:
    url, control = stub
    job = _job(tmp_path, env_url, url, prompt_format="tools", samples=1)
    summary = await Collector(job).run()
    assert summary.counts == {"success": 10}
    store = Store(job.store)
    run = store.get_run("r1")
    assert run["prompt_format"] == "tools"
    tools_sent = [r["tools"] for r in control.requests]
    assert tools_sent and all(t == CounterEnv.info(CounterData()).tools for t in tools_sent)
    for ep in store.episodes(run["id"]):
        _check_episode_common(ep, run["id"], "solver")
        steps = math.ceil(TARGETS[ep["task_id"]] / 9) + 1
        assert (ep["outcome"], ep["reward"], ep["success"], ep["turns"]) == ("success", 1.0, True, steps)
        turns = store.turns(ep["id"])
        assert [t["role"] for t in turns] == ["system", "user"] + ["assistant", "tool"] * steps
        for a, obs in zip(turns[2::2], turns[3::2]):
            (call,) = a["tool_calls"]
            assert a["content"] is None and a["finish_reason"] == "tool_calls"
            assert obs["tool_call_id"] == call["id"]
            assert json.loads(obs["action"]) == {"name": call["function"]["name"], "arguments": json.loads(call["function"]["arguments"])}
            assert len(a["token_ids"]) == len(a["logprobs"]) == a["completion_tokens"]
        assert json.loads(turns[-2]["tool_calls"][0]["function"]["arguments"]) == {"answer": str(TARGETS[ep["task_id"]])}


async def test_expert_policy_solves_every_task(tmp_path: Path, env_url: str) -> None:
    job = _job(tmp_path, env_url, None, policy="expert", split="all", samples=1)
    summary = await Collector(job).run()
    assert summary.counts == {"success": 30}
    store = Store(job.store)
    run = store.get_run("r1")
    assert run["model"] is None and run["policy"] == "expert"
    for ep in store.episodes(run["id"]):
        assert ep["outcome"] == "success" and ep["reward"] == 1.0 and ep["prompt_tokens"] == 0 and ep["model"] is None
        turns = store.turns(ep["id"])
        actions = [t for t in turns if t["role"] == "assistant"]
        assert len(actions) == ep["turns"] and all(t["content"] == f"Action: {t['action']}" for t in actions)
        assert actions[-1]["action"] == f"finish[{TARGETS[ep['task_id']]}]"


@pytest.mark.parametrize(("model", "fmt", "outcome", "turns"), [
    ("wrong", "react", "failure", 1),
    ("looper", "react", "truncated", 4),
    ("garbage", "react", "policy_error", 0),
    ("badtool", "tools", "policy_error", 0),
])
async def test_scored_outcomes(tmp_path: Path, env_url: str, stub: tuple[str, StubControl], model: str, fmt: str,
                               outcome: str, turns: int) -> None:
    url, control = stub
    job = _job(tmp_path, env_url, url, model_name=model, prompt_format=fmt, samples=1, limit=3, max_turns=4,
               max_parse_retries=2)
    await Collector(job).run()
    store = Store(job.store)
    run = store.get_run("r1")
    for ep in store.episodes(run["id"]):
        assert (ep["outcome"], ep["success"], ep["reward"], ep["turns"]) == (outcome, False, 0.0, turns)
        rows = store.turns(ep["id"])
        if outcome == "policy_error":  # 1 + max_parse_retries replies, each answered with feedback but the last
            assert [t["role"] for t in rows].count("assistant") == 3 and ep["error"]
            feedback = [t for t in rows[2:] if t["role"] != "assistant"]
            assert len(feedback) == 2 and all(t["observation"] is None for t in feedback)
            if fmt == "tools":
                assert all(t["role"] == "tool" and "unknown tool 'teleport'" in t["content"] for t in feedback)
    (score,) = score_run(store, run["id"])
    assert score.episodes == 3 and score.success_rate == 0.0 and score.infra_errors == 0


async def test_context_overflow_is_truncated(tmp_path: Path, env_url: str, stub: tuple[str, StubControl]) -> None:
    url, _ = stub
    job = _job(tmp_path, env_url, url, model_name="overflow", samples=1, task_ids=["counter-1", "counter-2"])
    summary = await Collector(job).run()
    store = Store(job.store)
    for ep in store.episodes(summary.run_id):  # targets 12 and 19: not solvable in the 2 steps that fit
        assert (ep["outcome"], ep["success"], ep["reward"], ep["turns"]) == ("truncated", False, 0.0, 2)
        assert "maximum context length" in ep["error"]
        assert [t["role"] for t in store.turns(ep["id"])] == ["system", "user"] + ["assistant", "user"] * 2


async def test_token_budget_truncates(tmp_path: Path, env_url: str, stub: tuple[str, StubControl]) -> None:
    url, _ = stub
    job = _job(tmp_path, env_url, url, samples=1, task_ids=["counter-2"], max_episode_tokens=120)
    summary = await Collector(job).run()
    store = Store(job.store)
    (ep,) = store.episodes(summary.run_id)
    last = [t for t in store.turns(ep["id"]) if t["role"] == "assistant"][-1]
    assert ep["outcome"] == "truncated" and "120 tokens" in ep["error"]
    assert last["prompt_tokens"] + last["completion_tokens"] >= 120 and ep["turns"] < 4


async def test_extra_tool_calls_are_answered_not_executed(tmp_path: Path, env_url: str,
                                                         stub: tuple[str, StubControl]) -> None:
    url, control = stub
    job = _job(tmp_path, env_url, url, model_name="double", prompt_format="tools", samples=1, task_ids=["counter-0"])
    summary = await Collector(job).run()
    store = Store(job.store)
    (ep,) = store.episodes(summary.run_id)
    assert ep["outcome"] == "success" and ep["turns"] == 2  # the second call of each reply never reached the env
    turns = store.turns(ep["id"])
    assert [t["role"] for t in turns] == ["system", "user"] + ["assistant", "tool", "tool"] * 2
    for a, first, second in zip(turns[2::3], turns[3::3], turns[4::3], strict=True):
        ids = [c["id"] for c in a["tool_calls"]]
        assert [first["tool_call_id"], second["tool_call_id"]] == ids
        assert first["observation"] is not None and second["observation"] is None
        assert second["content"].startswith("Not executed")
    # every tool call id was answered in the conversation the model saw next
    final = control.requests[-1]["messages"]
    asked = [c["id"] for m in final if m["role"] == "assistant" for c in m.get("tool_calls", [])]
    answered = [m["tool_call_id"] for m in final if m["role"] == "tool"]
    assert asked == answered


async def test_extras_dropped_when_server_refuses_them(tmp_path: Path, env_url: str, stub: tuple[str, StubControl]) -> None:
    url, control = stub
    control.accept_extras = False
    job = _job(tmp_path, env_url, url, samples=1, limit=2, concurrency=1)
    summary = await Collector(job).run()
    assert summary.counts == {"success": 2}
    assert control.requests[0].get("return_token_ids") is True
    assert all("return_token_ids" not in r and "logprobs" not in r for r in control.requests[1:])
    store = Store(job.store)
    for ep in store.episodes(store.get_run("r1")["id"]):
        assert all(t["token_ids"] is None and t["logprobs"] is None for t in store.turns(ep["id"]))


async def test_extras_off_never_requested(tmp_path: Path, env_url: str, stub: tuple[str, StubControl]) -> None:
    url, control = stub
    await Collector(_job(tmp_path, env_url, url, samples=1, limit=2, extras="off")).run()
    assert control.requests and all("return_token_ids" not in r for r in control.requests)


def test_cli_collect_runs_show_eval(tmp_path: Path, env_url: str, stub: tuple[str, StubControl]) -> None:
    url, _ = stub
    app = typer.Typer()
    register(app)
    runner = CliRunner(env={"COLUMNS": "250"})
    db = str(tmp_path / "cli.db")
    job_file = tmp_path / "job.yaml"
    job_file.write_text("sampling:\n  temperature: 0.7\nretry_backoff: 0.01\n")
    args = ["collect", "--env", env_url, "--model", url, "--policy", "model", "--split", "dev", "--samples", "2",
            "--concurrency", "3", "--store", db, "--run-name", "cli", "--job", str(job_file), "--max-turns", "10",
            "--prompt-format", "react", "--limit", "4"]
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    assert "success" in res.output and "run cli" in res.output
    res = runner.invoke(app, args)
    assert res.exit_code == 2 and "already exists" in res.output
    res = runner.invoke(app, args + ["--resume"])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, [*args[:-2], "--limit", "5", "--resume"])
    assert res.exit_code == 2 and "config hash" in res.output
    res = runner.invoke(app, ["runs", "--store", db])
    assert res.exit_code == 0 and "cli" in res.output and "success 8" in res.output
    res = runner.invoke(app, ["show", "cli", "--store", db])
    assert res.exit_code == 0 and "assistant" in res.output and "Action:" in res.output
    res = runner.invoke(app, ["show", "cli", "--store", db, "--list"])
    assert res.exit_code == 0 and "counter-10" in res.output
    res = runner.invoke(app, ["eval", "cli", "--store", db, "--json"])
    assert res.exit_code == 0
    (score,) = json.loads(res.output)["scores"]
    assert (score["env"], score["split"], score["episodes"], score["success_rate"], score["infra_errors"]) == ("counter", "dev", 8, 1.0, 0)
    res = runner.invoke(app, ["collect", "--env", "nosuchenv", "--policy", "expert", "--store", db, "--run-name", "x"])
    assert res.exit_code == 2 and "TRAJGYM_ENV_URL_NOSUCHENV" in res.output
