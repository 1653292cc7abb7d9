"""Sampling is explicit: flags, job-file keys and a sampling file; one seed per task × sample derived from
the run seed; samples > 1 at temperature 0 refused; the sampling sent stored per episode."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import typer
from pydantic import ValidationError
from typer.testing import CliRunner

from cli.collect import register
from collector.collect import Collector
from collector.config import JobConfig, Sampling, build_job, call_seed, episode_seed
from store import Store
from tests.support import collector as collector_setup
from tests.support.openai_stub import StubControl

env_url = collector_setup.env_url
stub = collector_setup.stub


def _app() -> typer.Typer:
    app = typer.Typer()
    register(app)
    return app


def test_samples_at_temperature_zero_are_refused_with_the_reason(tmp_path: Path) -> None:
    runner = CliRunner(env={"COLUMNS": "250"})
    res = runner.invoke(_app(), ["collect", "--env", "http://127.0.0.1:9", "--model", "http://127.0.0.1:9",
                                 "--samples", "4", "--temperature", "0", "--store", str(tmp_path / "s.db"),
                                 "--run-name", "x"])
    assert res.exit_code == 2
    out = " ".join(res.output.split())
    assert "--samples 4 at temperature 0 gives 4 identical greedy samples" in out and "pass@k" in out
    assert "--allow-identical-samples" in out
    with pytest.raises(ValidationError, match="identical greedy samples"):
        JobConfig(run_name="x", env="http://e", model="http://m", samples=2)  # the default temperature is 0
    JobConfig(run_name="x", env="http://e", model="http://m", samples=2, allow_identical_samples=True)
    JobConfig(run_name="x", env="http://e", model="http://m", samples=2, sampling=Sampling(temperature=0.8))
    JobConfig(run_name="x", env="http://e", policy="expert", samples=2)  # no model: nothing to sample


def test_sampling_from_job_file_then_sampling_file_then_flags(tmp_path: Path) -> None:
    job = tmp_path / "job.yaml"
    job.write_text("run_name: a\nenv: http://e\nmodel: http://m\nsampling:\n  temperature: 0.5\n  top_p: 0.9\n"
                   "  max_tokens: 64\n")
    extra = tmp_path / "sampling.toml"
    extra.write_text('top_p = 0.8\nmin_p = 0.05\nrepetition_penalty = 1.1\n[extra_body]\nignore_eos = false\n')
    cfg = build_job(job, {}, sampling_file=extra, sampling={"temperature": 0.9, "seed": 7, "top_k": 40, "stop": ["\n\n"],
                                                            "max_tokens": None})
    s = cfg.sampling
    assert (s.temperature, s.top_p, s.max_tokens, s.seed, s.top_k, s.min_p, s.repetition_penalty, s.stop) == (
        0.9, 0.8, 64, 7, 40, 0.05, 1.1, ["\n\n"])
    assert s.request_fields() == {"temperature": 0.9, "top_p": 0.8, "max_tokens": 64, "stop": ["\n\n"], "top_k": 40,
                                  "min_p": 0.05, "repetition_penalty": 1.1}
    bad = tmp_path / "bad.yaml"
    bad.write_text("temprature: 0.7\n")  # a typo is an error, not silently ignored
    with pytest.raises(ValidationError):
        build_job(job, {}, sampling_file=bad)


def test_config_hash_of_a_default_job_is_unchanged() -> None:
    """Runs collected before the new sampling fields existed resume under the same hash."""
    job = JobConfig(run_name="a", env="http://e", model="http://m", sampling=Sampling(temperature=0.7, seed=3))
    legacy = {"temperature": 0.7, "top_p": 1.0, "max_tokens": 512, "seed": 3, "stop": None, "extra_body": None}
    identity = {**job.identity("counter", "m1"), "sampling": legacy}
    blob = json.dumps(identity, sort_keys=True, separators=(",", ":"))
    assert job.config_hash("counter", "m1") == hashlib.sha256(blob.encode()).hexdigest()
    assert job.config_hash("counter", "m1") != job.model_copy(
        update={"sampling": Sampling(temperature=0.7, seed=3, top_k=5)}).config_hash("counter", "m1")


def test_episode_seeds_are_derived_distinct_and_stable() -> None:
    seeds = {(t, s): episode_seed(1, f"task-{t}", s) for t in range(50) for s in range(8)}
    assert len(set(seeds.values())) == len(seeds) and all(0 <= v < 2**31 for v in seeds.values())
    assert seeds[(0, 0)] == episode_seed(1, "task-0", 0) != episode_seed(2, "task-0", 0)
    assert episode_seed(None, "t", 0) == episode_seed(0, "t", 0)
    assert call_seed(2**31 - 1, 1) == 0
    sampled, sent = Sampling(temperature=0.8, seed=1, extra_body={"min_tokens": 2}).for_episode("task-3", 2)
    assert sampled.seed == sent["seed"] == episode_seed(1, "task-3", 2)
    assert sent == {"temperature": 0.8, "top_p": 1.0, "max_tokens": 512, "min_tokens": 2, "seed": sampled.seed}


async def test_sampling_sent_is_stored_per_episode_and_reproducible(tmp_path: Path, env_url: str,
                                                                    stub: tuple[str, StubControl]) -> None:
    url, control = stub
    sampling = Sampling(temperature=0.8, top_p=0.95, top_k=20, max_tokens=48, seed=1, stop=["Observation:"])
    runs = []
    for name in ("a", "b"):
        job = JobConfig(run_name=name, env=env_url, model=url, store=str(tmp_path / "s.db"), split="test", limit=3,
                        samples=4, concurrency=4, sampling=sampling, retry_backoff=0.01)
        summary = await Collector(job).run()
        store = Store(job.store)
        runs.append({(e["task_id"], e["sample"]): e["sampling"] for e in store.episodes(summary.run_id)})
    assert runs[0] == runs[1]  # same run seed: the same seed for every task × sample
    first = runs[0]
    assert len({s["seed"] for s in first.values()}) == 12
    for (task, sample), sent in first.items():
        assert sent == {"temperature": 0.8, "top_p": 0.95, "max_tokens": 48, "stop": ["Observation:"], "top_k": 20,
                        "seed": episode_seed(1, task, sample)}
    seeds_sent = {r["seed"] for r in control.requests}
    assert {s["seed"] for s in first.values()} <= seeds_sent
    assert all(r["top_k"] == 20 and r["stop"] == ["Observation:"] and r["temperature"] == 0.8 for r in control.requests)
