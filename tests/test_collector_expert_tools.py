"""The expert under `--prompt-format tools`: its text actions become native tool calls (real counter env service).

Same episodes and rewards as the ReAct expert; each action is one assistant tool call whose
result comes back as the `tool` message naming its id; the run stores the tool schemas in its
provenance, and its identity differs from the ReAct expert run's (which is unchanged)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from collector.collect import Collector
from collector.config import JobConfig
from collector.prompts import action_parser, as_tool_call
from store import Store
from tests.support import collector as collector_setup
from tests.support.collector import TARGETS
from tests.support.counter_env import CounterData, CounterEnv

env_url = collector_setup.env_url


def _job(tmp_path: Path, env_url: str, fmt: str, name: str) -> JobConfig:
    return JobConfig.model_validate({"run_name": name, "env": env_url, "policy": "expert", "store": str(tmp_path / "s.db"),
                                     "split": "all", "concurrency": 4, "prompt_format": fmt})


async def test_expert_tool_calls(tmp_path: Path, env_url: str) -> None:
    react, tools = _job(tmp_path, env_url, "react", "e-react"), _job(tmp_path, env_url, "tools", "e-tools")
    assert (await Collector(react).run()).counts == {"success": 30}
    assert (await Collector(tools).run()).counts == {"success": 30}
    assert react.identity("counter", None)["prompt_format"] is None  # the ReAct expert's identity is unchanged
    assert react.config_hash("counter", None) != tools.config_hash("counter", None)
    store = Store(tools.store)
    try:
        run = store.get_run("e-tools")
        prov = run["provenance"]
        assert prov["prompt_format"] == "tools" and [t["function"]["name"] for t in prov["tools"]] == ["add", "finish"]
        assert store.get_run("e-react")["provenance"]["prompt_format"] is None
        react_rewards = {e["task_id"]: e["reward"] for e in store.episodes(store.get_run("e-react")["id"])}
        for ep in store.episodes(run["id"]):
            assert ep["reward"] == react_rewards[ep["task_id"]] == 1.0
            turns = store.turns(ep["id"])
            assert [t["role"] for t in turns] == ["system", "user"] + ["assistant", "tool"] * ep["turns"]
            assert "call exactly one of the provided tools" in turns[0]["content"]
            for k, (call, result) in enumerate(zip(turns[2::2], turns[3::2]), start=1):
                (tc,) = call["tool_calls"]
                assert call["content"] == "" and tc["id"] == f"call_{k}" == result["tool_call_id"]
                assert json.loads(result["action"]) == {"name": tc["function"]["name"],
                                                        "arguments": json.loads(tc["function"]["arguments"])}
            last = turns[-2]["tool_calls"][0]["function"]
            assert last["name"] == "finish" and json.loads(last["arguments"]) == {"answer": str(TARGETS[ep["task_id"]])}
    finally:
        store.close()


def test_text_actions_map_to_tool_calls_or_refuse() -> None:
    info = CounterEnv.info(CounterData())
    parser = action_parser(info)
    assert parser.forms() == info.text_actions
    call = as_tool_call(parser, "add[ 7 ]")
    assert (call.name, call.arguments) == ("add", {"amount": "7"})
    with pytest.raises(ValueError, match="not a valid action"):
        as_tool_call(parser, "multiply[2]")
