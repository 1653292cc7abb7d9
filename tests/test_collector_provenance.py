"""Every run is reproducible: its provenance (versions, env data digest, model, prompts, tool schemas,
sampling, command line) is stored, shown, exported, and checked on --resume; old stores upgrade in place."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import typer
from sqlalchemy import insert, text, update
from typer.testing import CliRunner

from cli.collect import register
from collector.collect import Collector
from collector.config import JobConfig
from collector.export import export_runs
from collector.export.kinds import ExportFormat
from collector.provenance import redact, trajgym_version
from envs.types import Split, TaskSpec
from services.app import create_app
from store import ConfigMismatch, Store
from store.connect import make_engine
from store.migrate import upgrade
from store.models import Run
from store.scoring import score_run
from tests.support import collector as collector_setup
from tests.support.counter_env import CounterData, CounterEnv
from tests.support.openai_stub import StubControl
from tests.support.server import running_server

env_url = collector_setup.env_url
stub = collector_setup.stub


class CounterEnvV2(CounterEnv):
    version = "0.2.0"


class RewordedData(CounterData):
    def __init__(self) -> None:
        super().__init__()
        t = self.tasks["counter-0"]
        self.tasks["counter-0"] = TaskSpec(task_id=t.task_id, split=t.split, instruction=t.instruction + " Please.",
                                           meta=t.meta)


class RewordedCounterEnv(CounterEnv):
    @classmethod
    def load(cls, data_dir: Path | None = None) -> CounterData:
        return RewordedData()


@pytest.fixture(scope="module")
def v2_url() -> Iterator[str]:
    with running_server(create_app(CounterEnvV2)) as url:
        yield url


@pytest.fixture(scope="module")
def reworded_url() -> Iterator[str]:
    with running_server(create_app(RewordedCounterEnv)) as url:
        yield url


def _job(tmp_path: Path, env: str, model: str, **kw: object) -> JobConfig:
    base: dict[str, object] = {"run_name": "p", "env": env, "model": model, "store": str(tmp_path / "s.db"),
                               "split": "test", "limit": 2, "concurrency": 2, "prompt_format": "tools",
                               "retry_backoff": 0.01}
    base.update(kw)
    return JobConfig.model_validate(base)


def test_data_digest_is_served_and_follows_the_data() -> None:
    data = CounterEnv.load_data()
    info = CounterEnv.info(data)
    assert info.data_digest is not None and info.data_digest.startswith("sha256:") and len(info.data_digest) == 71
    assert CounterEnv.info(CounterEnv.load_data()).data_digest == info.data_digest  # stable across loads
    assert RewordedCounterEnv.info(RewordedCounterEnv.load_data()).data_digest != info.data_digest
    data.withhold(["counter-3"], "test")
    assert CounterEnv.info(data).data_digest != info.data_digest

    class WithGold(CounterData):
        def digest_parts(self) -> list[bytes]:
            return [b"gold-file-sha256:1234"]

    assert WithGold().digest() != CounterData().digest()
    assert len(CounterData().digest()) == 71 and CounterData().task_ids(Split.test)


async def test_provenance_is_stored_and_resume_refuses_a_changed_one(tmp_path: Path, env_url: str, v2_url: str,
                                                                     reworded_url: str,
                                                                     stub: tuple[str, StubControl]) -> None:
    url, _ = stub
    job = _job(tmp_path, env_url, url)
    summary = await Collector(job, command=["trajgym", "collect", "--store", "postgresql://u:secret@db/x"]).run()
    store = Store(job.store)
    run = store.get_run("p")
    prov = run["provenance"]
    info = CounterEnv.info(CounterEnv.load_data())
    system = store.turns(store.episodes(summary.run_id)[0]["id"])[0]["content"]
    assert prov["trajgym_version"] == trajgym_version() != "unknown"
    assert prov["env"] == {"name": "counter", "version": "0.1.0", "modes": {}, "data_digest": info.data_digest,
                           "withheld_tasks": {}}
    assert prov["model"] == {"id": "solver", "server": {"id": "solver"}}
    assert (prov["policy"], prov["prompt_format"], prov["system_prompt"]) == ("model", "tools", system)
    assert prov["tools"] == info.tools and prov["text_actions"] == info.text_actions and prov["constraint"] is None
    assert prov["sampling"] == job.sampling.model_dump()
    assert prov["command"] == ["trajgym", "collect", "--store", "postgresql://u:***@db/x"]
    # the same job (another command line) joins the run
    again = await Collector(job, resume=True, command=["another", "argv"]).run()
    assert not again.created
    # another env version, or other data behind the same env name: refused, naming what changed
    with pytest.raises(ConfigMismatch, match=r"env\.version: '0\.1\.0' -> '0\.2\.0'"):
        await Collector(job.model_copy(update={"env": v2_url}), resume=True).run()
    with pytest.raises(ConfigMismatch, match=r"env\.data_digest"):
        await Collector(job.model_copy(update={"env": reworded_url}), resume=True).run()

    runner = CliRunner(env={"COLUMNS": "250"})
    app = typer.Typer()
    register(app)
    res = runner.invoke(app, ["show", "p", "--store", job.store])
    assert res.exit_code == 0, res.output
    for shown in ("provenance of run p", "env data digest", info.data_digest[:20], "trajgym version", "add, finish",
                  "postgresql://u:***@db/x"):
        assert shown in res.output, shown
    res = runner.invoke(app, ["show", "p", "--store", job.store, "--provenance"])
    assert res.exit_code == 0 and json.loads(res.stdout) == prov


async def test_exports_carry_the_stored_provenance_and_tools(tmp_path: Path, env_url: str,
                                                             stub: tuple[str, StubControl]) -> None:
    url, _ = stub
    job = _job(tmp_path, env_url, url)
    await Collector(job).run()
    store = Store(job.store)
    # the schemas exported are the ones stored with the run, not the local registry's
    stored = store.get_run("p")["provenance"]
    stored["tools"][0]["function"]["description"] = "as sent at collection time"
    with store.engine.begin() as conn:
        conn.execute(update(Run).where(Run.name == "p").values(provenance=stored))
    out = tmp_path / "rows.jsonl"
    summary = export_runs(store, ["p"], ExportFormat.messages, out)
    assert summary.provenance == str(tmp_path / "rows.jsonl.provenance.json")
    assert json.loads(Path(summary.provenance).read_text()) == {"p": stored}
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert rows and all(r["tools"] == stored["tools"] and r["run"] == "p" for r in rows)
    hf = tmp_path / "hf"
    export_runs(store, ["p"], ExportFormat.hf, hf)
    assert json.loads((hf / "provenance.json").read_text()) == {"p": stored}


def test_redact_hides_url_passwords() -> None:
    assert redact("postgresql://user:s3cr3t@host:5432/db") == "postgresql://user:***@host:5432/db"
    assert redact("--store=sqlite:///x.db") == "--store=sqlite:///x.db"
    assert redact("http://host:8000/v1") == "http://host:8000/v1"


async def test_a_store_at_revision_0001_upgrades_in_place(tmp_path: Path, env_url: str,
                                                          stub: tuple[str, StubControl]) -> None:
    """A store created before this change (revision 0001, one finished run) upgrades on open; the old run still
    scores, its new columns read NULL, and resuming it records the provenance it lacked."""
    url, _ = stub
    db = tmp_path / "old.db"
    engine = make_engine(str(db))
    upgrade(engine, "0001_initial")
    now = datetime.now(UTC)
    job = JobConfig(run_name="old", env=env_url, model=url, store=str(db), split="test", limit=2, retry_backoff=0.01)
    with engine.begin() as conn:
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar() == "0001_initial"
        conn.execute(text("INSERT INTO runs (name, config, config_hash, env, model, policy, prompt_format, "
                          "total_episodes, created_at) VALUES ('old', '{}', :h, 'counter', 'solver', 'model', 'react', 2, :t)"),
                     {"h": job.config_hash("counter", "solver"), "t": now})
        for i, (outcome, reward, success) in enumerate((("success", 1.0, True), ("failure", 0.0, False))):
            conn.execute(text("INSERT INTO episodes (run_id, env, split, task_id, sample, attempt, claims, status, "
                              "outcome, reward, success, turns) VALUES (1, 'counter', 'test', :task, 0, 1, 1, 'done', "
                              ":o, :r, :s, 2)"), {"task": f"counter-{i}", "o": outcome, "r": reward, "s": success})
            conn.execute(text("INSERT INTO turns (episode_id, idx, step, role, content) VALUES (:e, 0, 0, 'system', 'hi')"),
                         {"e": i + 1})
    engine.dispose()
    store = Store(str(db))  # opening upgrades to head
    with store.engine.connect() as conn:
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar() == "0002_outcomes_provenance"
    run = store.get_run("old")
    assert run["provenance"] is None
    (score,) = score_run(store, run["id"])
    assert (score.episodes, score.successes, score.success_rate, score.env_errors, score.mean_reward) == (2, 1, 0.5, 0, 0.5)
    (turn,) = store.turns(store.episodes(run["id"])[0]["id"])
    assert (turn["content"], turn["info"], turn["env_ms"], turn["seed"]) == ("hi", None, None, None)
    assert all(e["sampling"] is None for e in store.episodes(run["id"]))
    # an old run joined with --resume adopts this job's provenance (nothing to compare it with)
    again = await Collector(job, resume=True).run()
    assert not again.created and again.stats.done == 0
    assert store.get_run("old")["provenance"]["env"]["name"] == "counter"
    with store.engine.begin() as conn:  # and new rows write alongside the old ones
        conn.execute(insert(Run).values(name="new", config={}, config_hash="h", env="counter", model=None,
                                        policy="expert", prompt_format="react", total_episodes=0, created_at=now,
                                        provenance={"x": 1}))
    assert store.get_run("new")["provenance"] == {"x": 1}
