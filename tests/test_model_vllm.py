"""End to end against a real vLLM server (CPU build, SmolLM2-135M-Instruct from PyPI).

The collector drives the real model server against real env services (QA and
household) in both prompt formats with constrained decoding, 8 episodes in flight;
what is stored is checked against the server itself (`/tokenize`, `/detokenize`)
and its `usage`. Then the server is stopped mid-run and restarted: infra errors,
never reward 0, and a resume that completes every task exactly once. And seeded sampling
(`--samples 4 --temperature 0.8 --seed 1`) run twice gives the same tokens both times.

Run with `make test-model` (the first run sets up the model venv: 68 s install with a warm pip cache + 41 s conversion measured here; about 3 min 40 s more for a cold install per the shared notes).
"""

from __future__ import annotations

import asyncio
import json
import re
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from collector.config import JobConfig, Policy, PromptFormat, Sampling
from collector.constrain import react_regex
from collector.collect import Collector
from envs.household.env import HouseholdEnv
from envs.qa.env import QaEnv
from services.app import create_app
from services.model.server import ModelServer, free_port, setup
from tests.support.server import running_server

pytestmark = pytest.mark.model
REPO = Path(__file__).resolve().parents[1]
SERVER_START_TIMEOUT = 900.0


@pytest.fixture(scope="module")
def vllm() -> Iterator[ModelServer]:
    setup()
    server = ModelServer()
    with server.running(timeout=SERVER_START_TIMEOUT):
        yield server


@pytest.fixture(scope="module")
def qa_url() -> Iterator[str]:
    with running_server(create_app(QaEnv)) as url:
        yield url


@pytest.fixture(scope="module")
def household_url() -> Iterator[str]:
    with running_server(create_app(HouseholdEnv)) as url:
        yield url


def _rows(db: Path, sql: str, *args: object) -> list[sqlite3.Row]:
    with sqlite3.connect(db) as conn:
        conn.row_factory = sqlite3.Row
        return conn.execute(sql, args).fetchall()


def _job(name: str, env: str, db: Path, model: str, fmt: PromptFormat, **kw: object) -> JobConfig:
    return JobConfig(run_name=name, env=env, store=f"sqlite:///{db}", policy=Policy.model, model=model,
                     prompt_format=fmt, constrain_actions=True, split="test", limit=8, concurrency=8, max_turns=4,
                     sampling=Sampling(max_tokens=96, temperature=0.0), **kw)


def _check_stored_turns_against_server(db: Path, run: str, server: ModelServer) -> int:
    """Every assistant turn: ids/logprobs/usage agree, and the server itself maps ids <-> text the same way."""
    episodes = _rows(db, "SELECT e.id, e.outcome, e.reward, e.prompt_tokens, e.completion_tokens FROM episodes e "
                         "JOIN runs r ON r.id = e.run_id WHERE r.name = ?", run)
    checked = 0
    with httpx.Client(base_url=server.url, timeout=60) as http:
        for ep in episodes:
            turns = _rows(db, "SELECT * FROM turns WHERE episode_id = ? ORDER BY idx", ep["id"])
            messages: list[dict[str, object]] = []
            completion_total = prompt_total = 0
            for t in turns:
                if t["role"] == "assistant":
                    ids, logprobs = json.loads(t["token_ids"]), json.loads(t["logprobs"])
                    prompt_ids = json.loads(t["prompt_token_ids"])
                    assert ids and len(ids) == len(logprobs) == t["completion_tokens"]
                    assert all(lp <= 0.0 for lp in logprobs)
                    assert len(prompt_ids) == t["prompt_tokens"]
                    completion_total += t["completion_tokens"]
                    prompt_total += t["prompt_tokens"]
                    detok = http.post("/detokenize", json={"model": server.served_name, "tokens": ids}).json()["prompt"]
                    if t["content"]:
                        assert t["content"] in detok or detok.startswith(t["content"].strip()), (t["content"], detok)
                    tok = http.post("/tokenize", json={"model": server.served_name, "messages": messages,
                                                       "add_generation_prompt": True}).json()
                    assert tok["tokens"] == prompt_ids
                    checked += 1
                message: dict[str, object] = {"role": t["role"], "content": t["content"] or ""}
                if t["tool_calls"] and json.loads(t["tool_calls"]):
                    message["tool_calls"] = json.loads(t["tool_calls"])
                if t["tool_call_id"]:
                    message["tool_call_id"] = t["tool_call_id"]
                messages.append(message)
            assert ep["completion_tokens"] == completion_total and ep["prompt_tokens"] == prompt_total
    return checked


async def test_react_with_constrained_decoding_on_qa(vllm: ModelServer, qa_url: str, tmp_path: Path) -> None:
    db = tmp_path / "react.db"
    started = time.perf_counter()
    summary = await Collector(_job("react-qa", qa_url, db, vllm.url, PromptFormat.react)).run()
    elapsed = time.perf_counter() - started
    outcomes = [r["outcome"] for r in _rows(db, "SELECT outcome FROM episodes")]
    assert len(outcomes) == 8 and set(outcomes) <= {"success", "failure", "truncated", "policy_error"}, outcomes
    info = QaEnv.info(QaEnv.load())
    replies = [r["content"] for r in _rows(db, "SELECT content FROM turns WHERE role = 'assistant'")]
    assert replies and all(re.fullmatch(react_regex(info), c) for c in replies), replies[:3]
    env_steps = _rows(db, "SELECT COUNT(*) AS n FROM turns WHERE role = 'user' AND action IS NOT NULL")[0]["n"]
    assert env_steps >= 8  # the model's actions reached the env
    checked = _check_stored_turns_against_server(db, "react-qa", vllm)
    tokens = sum(r["completion_tokens"] for r in _rows(db, "SELECT completion_tokens FROM episodes"))
    print(f"\n[vllm react qa] 8 episodes, {checked} model turns, {tokens} completion tokens in {elapsed:.1f} s "
          f"({tokens / elapsed:.1f} tok/s); outcomes {dict((o, outcomes.count(o)) for o in set(outcomes))}; "
          f"stats {summary.counts}")


async def test_tool_calling_with_hermes_convention_on_household(vllm: ModelServer, household_url: str, tmp_path: Path) -> None:
    db = tmp_path / "tools.db"
    await Collector(_job("tools-household", household_url, db, vllm.url, PromptFormat.tools)).run()
    outcomes = [r["outcome"] for r in _rows(db, "SELECT outcome FROM episodes")]
    assert len(outcomes) == 8 and "infra_error" not in outcomes
    stored = [json.loads(r["tool_calls"] or "null") for r in _rows(db, "SELECT tool_calls FROM turns WHERE role = 'assistant'")]
    calls = [c for c in stored if c]
    assert calls, "vLLM's hermes parser returned no tool calls"
    names = {c[0]["function"]["name"] for c in calls}
    assert names <= {t["function"]["name"] for t in HouseholdEnv.info(HouseholdEnv.load()).tools}
    tool_turns = _rows(db, "SELECT tool_call_id FROM turns WHERE role = 'tool'")
    assert tool_turns and all(t["tool_call_id"] for t in tool_turns)
    assert _check_stored_turns_against_server(db, "tools-household", vllm) > 0


def _assistant_tokens(db: Path, run: str) -> dict[tuple[str, int, int], tuple[list[int], str, int]]:
    """(task, sample, turn index) -> (token ids, text, seed sent) of every assistant turn of a run."""
    rows = _rows(db, "SELECT e.task_id, e.sample, t.idx, t.token_ids, t.content, t.seed FROM turns t "
                     "JOIN episodes e ON e.id = t.episode_id JOIN runs r ON r.id = e.run_id "
                     "WHERE r.name = ? AND t.role = 'assistant'", run)
    return {(r["task_id"], r["sample"], r["idx"]): (json.loads(r["token_ids"]), r["content"], r["seed"]) for r in rows}


def test_seeded_sampling_gives_the_same_tokens_twice(vllm: ModelServer, qa_url: str, tmp_path: Path) -> None:
    """`--samples 4 --temperature 0.8 --seed 1`, twice, through the CLI: every assistant turn has the same tokens
    (each task × sample has its own seed, so the 4 samples of a task are not copies of each other)."""
    db = tmp_path / "seeded.db"
    for run in ("seeded-a", "seeded-b"):
        cmd = [sys.executable, "-m", "cli.main", "collect", "--env", qa_url, "--model", vllm.url, "--policy", "model",
               "--prompt-format", "react", "--constrain", "--split", "test", "--limit", "2", "--samples", "4",
               "--temperature", "0.8", "--seed", "1", "--max-turns", "2", "--max-tokens", "64", "--concurrency", "1",
               "--store", f"sqlite:///{db}", "--run-name", run, "--quiet"]
        result = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=900)
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    a, b = _assistant_tokens(db, "seeded-a"), _assistant_tokens(db, "seeded-b")
    assert len({(task, sample) for task, sample, _ in a}) == 8
    assert a == b, [k for k in a if a[k] != b.get(k)][:5]
    assert all(ids for ids, _, _ in a.values())
    first: dict[str, set[tuple[int, ...]]] = {}
    for (task, _, idx), (ids, _, _) in a.items():
        if idx == 2:  # the first reply of each sample
            first.setdefault(task, set()).add(tuple(ids))
    assert any(len(replies) > 1 for replies in first.values()), "4 samples at temperature 0.8 were all identical"
    sampling = _rows(db, "SELECT e.sampling FROM episodes e JOIN runs r ON r.id = e.run_id WHERE r.name = 'seeded-a'")
    seeds = [json.loads(r["sampling"])["seed"] for r in sampling]
    assert len(set(seeds)) == 8 and all(json.loads(r["sampling"])["temperature"] == 0.8 for r in sampling)
    print(f"\n[vllm seeded] 2 runs x 8 episodes, {len(a)} assistant turns, identical token ids")


def _collect_cmd(db: Path, model_url: str, env_url: str, *extra: str) -> list[str]:
    return [sys.executable, "-m", "cli.main", "collect", "--env", env_url, "--model", model_url, "--policy", "model",
            "--prompt-format", "react", "--constrain", "--split", "train", "--limit", "16", "--concurrency", "4",
            "--max-turns", "4", "--store", f"sqlite:///{db}", "--run-name", "faults", "--quiet", *extra]


async def test_model_server_stopped_mid_run_then_resumed(qa_url: str, tmp_path: Path) -> None:
    """Stop vLLM mid-run: in-flight episodes become infra errors (reward NULL, never 0); restart; resume."""
    setup()
    db = tmp_path / "faults.db"
    job = tmp_path / "job.yaml"
    job.write_text("max_attempts: 2\nretry_backoff: 0.2\nmodel_retries: 1\nsampling: {max_tokens: 64}\n")
    server = ModelServer(port=free_port())
    with server.running(timeout=SERVER_START_TIMEOUT):
        proc = subprocess.Popen(_collect_cmd(db, server.url, qa_url, "--job", str(job)), cwd=REPO,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            await asyncio.sleep(1)
            if db.exists() and _rows(db, "SELECT COUNT(*) AS n FROM episodes WHERE status = 'done'")[0]["n"] >= 3:
                break
        server.stop()  # mid-run
        out, _ = proc.communicate(timeout=600)
    rows = _rows(db, "SELECT outcome, reward, success, status FROM episodes")
    infra = [r for r in rows if r["outcome"] == "infra_error"]
    assert infra, f"stopping the server produced no infra error:\n{out[-2000:]}"
    assert all(r["reward"] is None and r["success"] is None for r in infra)
    restarted = ModelServer(port=free_port())
    with restarted.running(timeout=SERVER_START_TIMEOUT):
        result = subprocess.run(_collect_cmd(db, restarted.url, qa_url, "--job", str(job), "--resume"), cwd=REPO,
                                capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    final = _rows(db, "SELECT task_id, sample, outcome, status FROM episodes")
    assert len(final) == 16 and len({(r["task_id"], r["sample"]) for r in final}) == 16
    assert all(r["status"] == "done" and r["outcome"] != "infra_error" for r in final), [dict(r) for r in final]
    print(f"\n[vllm faults] {len(infra)} infra errors after the stop; after resume 16/16 done exactly once")
