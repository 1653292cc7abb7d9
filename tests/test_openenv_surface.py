"""The OpenEnv surface, driven by OpenEnv's own client and validator from PyPI (`openenv`), unmodified.

Expert-guided episodes on the four envs give the same rewards and done flags as the v1 API;
the session is one of the service's sessions (limits, TTL, metrics, /v1/sessions/{id}).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator

import httpx
import pytest

openenv = pytest.importorskip("openenv", reason="OpenEnv's client (PyPI openenv, installed by `make install`) is absent")
websockets = pytest.importorskip("websockets", reason="the websockets package is absent")

from openenv import GenericEnvClient  # noqa: E402
from openenv.cli._validation import validate_running_environment  # noqa: E402
from openenv.core.mcp_client import MCPToolClient  # noqa: E402

from envs.registry import load_class  # noqa: E402
from services.app import ServiceSettings, create_app  # noqa: E402
from tests.support.counter_env import CounterEnv  # noqa: E402
from tests.support.server import running_server  # noqa: E402
from tests.support.surface_episodes import ENVS, as_tool_call, expert_action, first_test_tasks, v1_expert_episode  # noqa: E402


@pytest.fixture(scope="module", params=ENVS)
def env_service(request: pytest.FixtureRequest) -> Iterator[tuple[str, str]]:
    with running_server(create_app(load_class(request.param))) as url:
        yield request.param, url


def test_expert_episodes_match_v1(env_service: tuple[str, str]) -> None:
    """OpenEnv's client plays the expert's episode (text and call_tool actions in turn); rewards and dones equal v1's."""
    name, url = env_service
    env_cls = load_class(name)
    with httpx.Client(base_url=url, timeout=60) as http:
        for task_id in first_test_tasks(url, 2):
            reference = v1_expert_episode(url, task_id)
            rewards, dones, actions = [], [], []
            with GenericEnvClient(base_url=url + "/openenv").sync() as client:
                first = client.reset(task_id=task_id)
                assert first.done is False and first.reward is None
                assert first.observation["task_id"] == task_id and first.observation["text"]
                session_id = client.state()["episode_id"]
                assert first.metadata["session_id"] == session_id
                assert http.get(f"/v1/sessions/{session_id}").status_code == 200  # a v1 session like any other
                result = first
                while not result.done:
                    action = expert_action(http, session_id)
                    call = as_tool_call(env_cls, action) if len(actions) % 2 else None
                    if call is not None:
                        result = client.step({"type": "call_tool", "tool_name": call.name, "arguments": call.arguments})
                        assert result.observation["tool_name"] == call.name
                        assert result.observation["result"] == result.observation["text"]
                    else:
                        result = client.step({"text": action})
                        assert "tool_name" not in result.observation
                    actions.append(action)
                    rewards.append(result.reward)
                    dones.append(result.done)
                    assert len(actions) <= len(reference.actions), "longer than the v1 episode"
                state = client.state()
                assert state["step_count"] == len(actions) and state["done"] is True
                assert state["total_reward"] == pytest.approx(sum(reference.rewards))
            assert actions == reference.actions
            assert rewards == reference.rewards and dones == reference.dones
            assert http.get(f"/v1/sessions/{session_id}").status_code == 404  # closing the client closed the session


def test_openenv_validator_passes(env_service: tuple[str, str]) -> None:
    """OpenEnv's own runtime validator (`openenv validate --url`) accepts the mounted surface."""
    _, url = env_service
    report = validate_running_environment(url + "/openenv")
    assert report["passed"], report["criteria"]
    assert report["mode"] == "simulation" and report["standard_profile"] == "openenv-http/1.x"


def test_schema_is_generated_from_the_tools(env_service: tuple[str, str]) -> None:
    name, url = env_service
    env_cls = load_class(name)
    schemas = httpx.get(url + "/openenv/schema").json()
    variants = schemas["action"]["oneOf"]
    by_tool = {v["properties"]["tool_name"]["const"]: v for v in variants if "tool_name" in v["properties"]}
    assert set(by_tool) == {t.name for t in env_cls.tools}
    for tool in env_cls.tools:
        arguments = by_tool[tool.name]["properties"]["arguments"]
        assert arguments["required"] == [p.name for p in tool.params]
        assert set(arguments["properties"]) == {p.name for p in tool.params}
    text = next(v for v in variants if v["title"] == "TextAction")
    assert all(form in text["description"] for form in env_cls.parser().forms())
    assert {"text", "valid_actions", "metadata"} <= set(schemas["observation"]["properties"])
    assert {"episode_id", "step_count"} <= set(schemas["state"]["properties"])
    metadata = httpx.get(url + "/openenv/metadata").json()
    assert metadata["name"] == env_cls.name and metadata["version"] == env_cls.version


def test_openenv_mcp_tool_client_lists_and_calls_tools() -> None:
    """OpenEnv's MCPToolClient (its HTTP JSON-RPC session on /mcp, the WebSocket attached to it) works on a trajgym env."""
    env_cls = load_class("webshop")
    with running_server(create_app(env_cls)) as url:
        with MCPToolClient(base_url=url + "/openenv").sync() as client:
            tools = client.list_tools()
            assert [t.name for t in tools] == [t.name for t in env_cls.tools]
            assert tools[0].input_schema["required"] == [p.name for p in env_cls.tools[0].params]
            client.reset(split="test", seed=0)
            observation = client.call_tool("search", keywords="t-shirt")
            assert observation["tool_name"] == "search" and observation["text"] and observation["done"] is False
            session_id = client.state().episode_id
            assert httpx.get(f"{url}/v1/sessions/{session_id}").json()["turns"] == 1
        assert httpx.get(f"{url}/v1/sessions/{session_id}").status_code == 404  # the client closed its session


# ----- errors, limits, TTL, metrics: the counter env (instant) ------------------------------------------
async def _frames(url: str, frames: list[str]) -> list[dict]:
    answers = []
    async with websockets.connect(url.replace("http", "ws") + "/openenv/ws") as ws:
        for frame in frames:
            await ws.send(frame)
            answers.append(json.loads(await ws.recv()))
    return answers


def test_bad_frames_answer_openenv_errors_and_the_connection_survives() -> None:
    with running_server(create_app(CounterEnv)) as url:
        answers = asyncio.run(_frames(url, [
            "not json",
            json.dumps({"type": "teleport"}),
            json.dumps({"type": "step", "data": {"text": "add[1]"}}),  # before any reset
            json.dumps({"type": "reset", "data": {"task_id": "no-such-task"}}),
            json.dumps({"type": "reset", "data": {"tsak_id": "typo"}}),
            json.dumps({"type": "reset", "data": {}}),
            json.dumps({"type": "step", "data": {"type": "call_tool", "tool_name": "nope", "arguments": {}}}),
            json.dumps({"type": "step", "data": {"text": "add[1]", "tool_name": "add"}}),
            json.dumps({"type": "step", "data": {"text": "x" * 30_000}}),
            json.dumps({"type": "step", "data": {"type": "list_tools"}}),
            json.dumps({"type": "state"}),
        ]))
    codes = [a["data"].get("code") if a["type"] == "error" else a["type"] for a in answers]
    assert codes == ["INVALID_JSON", "UNKNOWN_TYPE", "SESSION_ERROR", "EXECUTION_ERROR", "VALIDATION_ERROR", "observation",
                     "VALIDATION_ERROR", "VALIDATION_ERROR", "VALIDATION_ERROR", "observation", "state"]
    assert "reset" in answers[2]["data"]["message"] and "no-such-task" in answers[3]["data"]["message"]
    assert "unknown tool" in answers[6]["data"]["message"]
    assert [t["name"] for t in answers[9]["data"]["observation"]["tools"]] == [t.name for t in CounterEnv.tools]
    assert answers[10]["data"]["step_count"] == 0


def test_oversized_frame_is_refused() -> None:
    settings = ServiceSettings(max_body_bytes=4096)
    with running_server(create_app(CounterEnv, settings=settings)) as url:
        (answer,) = asyncio.run(_frames(url, [json.dumps({"type": "reset", "data": {"task_id": "x" * 5000}})]))
    assert answer["type"] == "error" and "larger than 4096" in answer["data"]["message"]


def test_finished_episode_refuses_steps() -> None:
    with running_server(create_app(CounterEnv)) as url:
        with GenericEnvClient(base_url=url + "/openenv").sync() as client:
            client.reset()
            result = client.step({"text": "finish[0]"})
            assert result.done is True and result.reward == 0.0
            with pytest.raises(RuntimeError, match="EXECUTION_ERROR"):
                client.step({"text": "add[1]"})
            assert client.reset().done is False  # a new episode on the same connection


def test_session_limit_applies() -> None:
    with running_server(create_app(CounterEnv, settings=ServiceSettings(max_sessions=1))) as url:
        first = GenericEnvClient(base_url=url + "/openenv").sync()
        second = GenericEnvClient(base_url=url + "/openenv").sync()
        with first, second:
            first.reset()
            with pytest.raises(RuntimeError, match="CAPACITY_REACHED"):
                second.reset()
            assert httpx.post(url + "/v1/sessions", json={}).status_code == 429  # one table for every surface
            first.reset()  # a reset replaces the connection's own session: no second slot needed
            first.close()
            assert second.reset().done is False
        metrics = httpx.get(url + "/metrics").text
    assert 'trajgym_errors_total{env="counter",status="429"} 2.0' in metrics
    assert 'trajgym_sessions_created_total{env="counter"} 3.0' in metrics


def test_idle_session_is_reaped() -> None:
    settings = ServiceSettings(session_ttl=0.3, reap_interval=0.1)
    with running_server(create_app(CounterEnv, settings=settings)) as url:
        with GenericEnvClient(base_url=url + "/openenv").sync() as client:
            client.reset()
            time.sleep(1.0)
            with pytest.raises(RuntimeError, match="closed or expired"):
                client.step({"text": "add[1]"})
        assert 'reason="expired"' in httpx.get(url + "/metrics").text


def test_http_routes_act_on_named_sessions() -> None:
    with running_server(create_app(CounterEnv)) as url, httpx.Client(base_url=url + "/openenv") as http:
        opened = http.post("/reset", json={"seed": 1})
        assert opened.status_code == 200
        session_id = opened.json()["metadata"]["session_id"]
        step = http.post("/step", json={"action": {"text": "add[1]"}, "session_id": session_id})
        assert step.status_code == 200 and step.json()["observation"]["turn"] == 1
        assert http.get("/state", params={"session_id": session_id}).json()["step_count"] == 1
        assert http.post("/step", json={"action": {"text": "add[1]"}}).status_code == 409  # no session named
        assert http.post("/step", json={"action": {"text": "add[1]"}, "session_id": "nope"}).status_code == 404
        assert http.post("/step", json={"action": {"bogus": 1}, "session_id": session_id}).status_code == 422
        assert http.post("/reset", json={"seed": -1}).status_code == 422
        tools = http.post("/mcp", json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"}).json()
        assert [t["name"] for t in tools["result"]["tools"]] == [t.name for t in CounterEnv.tools]
        call = http.post("/mcp", json={"jsonrpc": "2.0", "id": 2, "method": "tools/call",
                                       "params": {"name": "add", "arguments": {"amount": "2"}, "session_id": session_id}}).json()
        assert call["result"]["turn"] == 2 and call["result"]["tool_name"] == "add" and call["result"]["reward"] == 0.0
        assert http.post("/mcp", content=b"{").json()["error"]["code"] == -32700
        assert http.post("/mcp", json={"jsonrpc": "2.0", "id": 3, "method": "nope"}).json()["error"]["code"] == -32601
        assert httpx.delete(f"{url}/v1/sessions/{session_id}").status_code == 200


def test_v1_info_lists_every_surface() -> None:
    with running_server(create_app(CounterEnv)) as url:
        info = httpx.get(url + "/v1/info").json()
    surfaces = info["surfaces"]
    assert set(surfaces) == {"v1", "channel", "agentgym", "openenv", "mcp", "gymnasium"}
    assert surfaces["channel"]["websocket"] == url.replace("http", "ws") + "/v1/channel"
    assert surfaces["openenv"]["url"] == url + "/openenv" and surfaces["openenv"]["websocket"] == url.replace("http", "ws") + "/openenv/ws"
    assert surfaces["mcp"]["url"] == url + "/mcp" and surfaces["v1"]["url"] == url + "/v1"
