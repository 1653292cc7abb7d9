"""Unit tests of the collector's pure parts: action parsing, completion parsing, job config, env resolution."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from collector.config import EnvNotResolved, JobConfig, build_job, resolve_env_url
from collector.model_client import ModelReplyError, api_base, parse_completion
from collector.prompts import ParseFailure, parse_react, parse_tool_call, react_system_prompt
from envs.types import EnvInfo


def test_parse_react_takes_text_after_last_action() -> None:
    assert parse_react("Thought: go.\nAction: search[red shoes]") == "search[red shoes]"
    assert parse_react("Action: add[1]\nThought: no wait\nAction: add[2]\nObservation: fake") == "add[2]"
    assert parse_react("Thought: sql\nAction: execute[SELECT *\nFROM t]") == "execute[SELECT *\nFROM t]"
    assert parse_react("action:  `click[Buy]` ") == "click[Buy]"


@pytest.mark.parametrize("text", [None, "", "Thought: hmm", "Thought: x\nAction:   \nObservation: y"])
def test_parse_react_failures(text: str | None) -> None:
    with pytest.raises(ParseFailure):
        parse_react(text)


def test_parse_tool_call() -> None:
    call, cid = parse_tool_call([{"id": "c1", "type": "function", "function": {"name": "add", "arguments": '{"amount": "3"}'}},
                                 {"id": "c2", "function": {"name": "finish", "arguments": "{}"}}])
    assert (call.name, call.arguments, cid) == ("add", {"amount": "3"}, "c1")
    for bad in (None, [], [{"function": {"name": "add", "arguments": "{oops"}}], [{"function": {"name": "", "arguments": "{}"}}],
                [{"function": {"name": "add", "arguments": "[1]"}}]):
        with pytest.raises(ParseFailure):
            parse_tool_call(bad)


def test_parse_completion_vllm_extras() -> None:
    body = {"choices": [{"message": {"content": "Action: a"}, "finish_reason": "stop", "token_ids": [5, 6],
                         "logprobs": {"content": [{"token": "Action", "logprob": -0.5}, {"token": ": a", "logprob": -1.25}]}}],
            "prompt_token_ids": [1, 2, 3], "usage": {"prompt_tokens": 3, "completion_tokens": 2}}
    r = parse_completion(body, 12.5)
    assert (r.content, r.finish_reason, r.token_ids, r.prompt_token_ids, r.logprobs) == ("Action: a", "stop", [5, 6], [1, 2, 3], [-0.5, -1.25])
    assert (r.prompt_tokens, r.completion_tokens, r.latency_ms) == (3, 2, 12.5)
    # older vLLM: return_tokens_as_token_ids puts "token_id:N" in the logprobs tokens
    body = {"choices": [{"message": {"content": "x"}, "logprobs": {"content": [{"token": "token_id:42", "logprob": -0.1}]}}]}
    r = parse_completion(body, 1.0)
    assert r.token_ids == [42] and r.prompt_token_ids is None and r.prompt_tokens == 0
    # plain OpenAI: no extras at all
    r = parse_completion({"choices": [{"message": {"content": "x", "tool_calls": []}}]}, 1.0)
    assert r.token_ids is None and r.logprobs is None and r.tool_calls is None
    with pytest.raises(ModelReplyError):  # an unusable reply: the episode's policy error, not infrastructure
        parse_completion({"choices": []}, 1.0)
    for ids in ([True, 2], [1.0], ["1"], [1, None], {"0": 1}):  # token ids are JSON integers, nothing else
        with pytest.raises(ModelReplyError, match="token_ids"):
            parse_completion({"choices": [{"message": {"content": "x"}, "token_ids": ids}]}, 1.0)
        with pytest.raises(ModelReplyError, match="prompt_token_ids"):
            parse_completion({"choices": [{"message": {"content": "x"}}], "prompt_token_ids": ids}, 1.0)


def test_api_base() -> None:
    assert api_base("http://h:8000") == "http://h:8000/v1"
    assert api_base("http://h:8000/v1/") == "http://h:8000/v1"


def test_react_system_prompt_lists_forms_with_descriptions() -> None:
    info = EnvInfo(name="counter", version="1", description="Count.", action_formats=["text"], text_actions=["add[{amount}]"],
                   tools=[{"type": "function", "function": {"name": "add", "description": "Add 1..9."}}], max_turns=5,
                   has_expert=True, has_progress=False, task_counts={})
    prompt = react_system_prompt(info)
    assert "- add[{amount}]: Add 1..9." in prompt and "Action: <one action>" in prompt


def test_job_file_yaml_and_toml_with_flag_overrides(tmp_path: Path) -> None:
    y = tmp_path / "job.yaml"
    y.write_text("run_name: a\nenv: http://e\nmodel: http://m\nsamples: 3\nsampling:\n  temperature: 0.7\n")
    t = tmp_path / "job.toml"
    t.write_text('run_name = "a"\nenv = "http://e"\nmodel = "http://m"\nsamples = 3\n[sampling]\ntemperature = 0.7\n')
    a, b = build_job(y, {"concurrency": 16, "samples": None}), build_job(t, {"concurrency": 16})
    assert a == b and a.samples == 3 and a.concurrency == 16 and a.sampling.temperature == 0.7
    # the hash covers what defines the data, not operational settings
    assert a.config_hash("counter", "m1") == a.model_copy(update={"concurrency": 1, "model": "http://other"}).config_hash("counter", "m1")
    assert a.config_hash("counter", "m1") != a.model_copy(update={"samples": 4}).config_hash("counter", "m1")
    assert a.config_hash("counter", "m1") != a.config_hash("counter", "m2")
    with pytest.raises(ValidationError):
        build_job(y, {"policy": "model", "model": None, "bogus": 1})
    with pytest.raises(ValidationError):
        JobConfig(run_name="x", env="http://e", policy="model")  # a model policy needs --model


def test_resolve_env_url(monkeypatch: pytest.MonkeyPatch) -> None:
    assert resolve_env_url("http://127.0.0.1:9/") == "http://127.0.0.1:9"
    monkeypatch.setenv("TRAJGYM_ENV_URL_WEBSHOP", "http://ws:1")
    assert resolve_env_url("webshop") == "http://ws:1"
    monkeypatch.delenv("TRAJGYM_ENV_URL_SQL", raising=False)
    with pytest.raises(EnvNotResolved, match="TRAJGYM_ENV_URL_SQL"):
        resolve_env_url("sql")


def test_conversation_body_is_the_whole_payload_encoded_at_once() -> None:
    """A request body spliced from a `Conversation`'s cached message encodings is byte for byte the compact JSON
    of the messages (unicode escaped, nested tool calls) and decodes to the payload with them; an extra body's
    own `messages` still wins, as it did when the payload was one dict."""
    import json

    from collector.model_client import Conversation, request_body

    messages = [{"role": "system", "content": "Sÿstem \"quoted\" ✓"}, {"role": "user", "content": "Go.\n"},
                {"role": "assistant", "content": "", "tool_calls": [{"id": "c1", "function": {"name": "f", "arguments": "{}"}}]}]
    conv = Conversation(messages[:1])
    for m in messages[1:]:
        conv.append(m)
    assert list(conv) == messages and len(conv) == 3 and conv[-1] is messages[-1]
    assert conv.json() == json.dumps(messages, separators=(",", ":"))
    payload = {"model": "m", "temperature": 0.7, "seed": 5, "logprobs": True}
    assert json.loads(request_body(payload, conv)) == {**payload, "messages": messages}
    assert request_body(payload, conv) == request_body(payload, messages)
    assert json.loads(request_body({}, conv)) == {"messages": messages}
    assert json.loads(request_body({**payload, "messages": []}, conv))["messages"] == []
    assert request_body(payload) == json.dumps(payload, separators=(",", ":")).encode()


def test_run_gc_settings_last_for_the_overlapping_runs_and_are_restored() -> None:
    import gc

    from collector.gcpolicy import YOUNG_THRESHOLD, run_gc

    before = gc.get_threshold()
    try:
        gc.set_threshold(700, 10, 10)
        with run_gc():
            assert gc.get_threshold() == (YOUNG_THRESHOLD, 10, 10) and gc.get_freeze_count() > 0
            with run_gc():  # a second run in the same process
                pass
            assert gc.get_threshold() == (YOUNG_THRESHOLD, 10, 10)  # the first is still running
            cycle: list[object] = []
            cycle.append(cycle)
            del cycle
            assert gc.collect() >= 1  # cyclic garbage is still collected
        assert gc.get_threshold() == (700, 10, 10) and gc.get_freeze_count() == 0
        gc.set_threshold(0)  # automatic collection off: left off
        with run_gc():
            assert gc.get_threshold()[0] == 0
        assert gc.get_threshold()[0] == 0
    finally:
        gc.set_threshold(*before)


def test_run_gc_leaves_a_process_s_own_freezing_alone() -> None:
    import gc

    from collector.gcpolicy import run_gc

    assert gc.get_freeze_count() == 0
    gc.freeze()
    try:
        frozen = gc.get_freeze_count()
        with run_gc():
            assert gc.get_freeze_count() == frozen
        assert gc.get_freeze_count() == frozen
    finally:
        gc.unfreeze()


def test_ensure_open_files_raises_the_soft_limit_within_the_hard_one() -> None:
    import resource

    from collector.fdlimit import ensure_open_files, files_needed

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 2048:
        pytest.skip(f"hard open-file limit {hard} is too low to test with")
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (512, hard))
        assert ensure_open_files(files_needed(800, 800)) == 1856 == resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        assert ensure_open_files(100) == 1856  # never lowered
        if hard != resource.RLIM_INFINITY:  # past the hard limit: as far as it goes
            assert ensure_open_files(hard + 1000) == hard == resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
