"""The web shop served over HTTP: an expert episode through AsyncEnvClient, 422s, the AgentGym
surface (WebShop's client reads /create as a bare int) and the gymnasium registration."""

from __future__ import annotations

from collections.abc import Iterator

import gymnasium
import httpx
import pytest

import envs  # noqa: F401  (registers the gymnasium ids)
from clients.env_client import AsyncEnvClient
from wire.errors import InvalidAction
from envs.webshop.data import WebShopData
from envs.webshop.env import WebShopEnv
from services.app import ServiceSettings, create_app
from tests.support.server import running_server


@pytest.fixture(scope="module")
def data() -> WebShopData:
    return WebShopEnv.load(None)


@pytest.fixture(scope="module")
def url(data: WebShopData) -> Iterator[str]:
    with running_server(create_app(WebShopEnv, data=data, settings=ServiceSettings(max_sessions=100))) as base:
        yield base


async def test_expert_episode_over_http(url: str, data: WebShopData) -> None:
    task_id = data.task_ids("test")[0]
    async with AsyncEnvClient(url) as client:
        info = await client.info()
        assert info.name == "webshop" and info.has_expert and {t["function"]["name"] for t in info.tools} == {"search", "click"}
        created = await client.create(task_id=task_id)
        assert created.valid_actions == ["search[<keywords>]"] and "Instruction:" in created.observation
        sid = created.session_id
        for _ in range(WebShopEnv.max_turns):
            action = await client.expert_action(sid)
            result = await client.step(sid, action)
            if result.done:
                break
        assert result.done and result.reward == 1.0 and result.info["success"] is True
        state = await client.state(sid)
        assert state.total_reward == 1.0 and state.done


async def test_tool_calls_and_bad_actions_over_http(url: str, data: WebShopData) -> None:
    async with AsyncEnvClient(url) as client:
        sid = (await client.create(task_id=data.task_ids()[0])).session_id
        r = await client.step(sid, {"name": "search", "arguments": {"keywords": ""}})
        # WebShop answers an invalid action with the unchanged page; the reason is in info
        assert r.observation.startswith("WebShop [SEP] Instruction:") and r.reward == 0 and not r.done
        assert r.info["invalid_action"] is True and "search needs keywords" in r.info["reason"]
        r = await client.step(sid, {"name": "search", "arguments": {"keywords": "green tea"}})
        assert "Total results" in r.observation
        r = await client.step(sid, {"name": "click", "arguments": {"item": "B000NOTHERE"}})
        assert "not clickable" in r.info["reason"] and r.info.get("invalid_action") is True
        with pytest.raises(InvalidAction):
            await client.step(sid, {"name": "click", "arguments": {}})
        with pytest.raises(InvalidAction):
            await client.step(sid, {"name": "buy", "arguments": {"item": "x"}})
        with pytest.raises(InvalidAction):
            await client.step(sid, "   ")
    with httpx.Client(base_url=url) as http:
        assert http.post(f"/v1/sessions/{sid}/step", json={"act": "search[x]"}).status_code == 422
        assert http.post(f"/v1/sessions/{sid}/step", content=b"{not json").status_code == 422


def test_agentgym_create_returns_int(url: str) -> None:
    with httpx.Client(base_url=url) as http:
        index = http.post("/create").json()
        assert isinstance(index, int)
        # WebShop's shapes: /reset → [observation, null], /step → {state, reward, done, info}
        observation, none = http.post("/reset", json={"env_idx": index, "session_id": 0}).json()
        assert observation.startswith("WebShop [SEP]") and none is None
        actions = http.get("/available_actions", params={"env_idx": index}).json()
        assert actions == {"has_search_bar": True, "clickables": ["search"]}
        step = http.post("/step", json={"env_idx": index, "action": "search[usb c cable]"}).json()
        assert "Total results" in step["state"] and step["reward"] == 0 and step["done"] is False
        assert http.post("/close", json={"env_idx": index}).status_code == 200


def test_gymnasium_make() -> None:
    env = gymnasium.make("trajgym/WebShop-v0")
    obs, info = env.reset(seed=3)
    assert obs.startswith("WebShop [SEP]") and info["valid_actions"] == ["search[<keywords>]"]
    obs, reward, terminated, truncated, info = env.step("search[olive oil]")
    assert "Total results" in obs and reward == 0 and not terminated and not truncated
    env.close()
