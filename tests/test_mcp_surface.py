"""The MCP surface, driven by the official `mcp` client over streamable HTTP.

It lists the env's tools with their JSON schemas (plus the episode controls) and completes
expert-guided episodes on the four envs with the v1 API's rewards and done flags; each MCP
session owns one env session of the service (limits, metrics, closed with the MCP session).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest

pytest.importorskip("mcp", reason="the MCP SDK (PyPI mcp) is absent")

from mcp import ClientSession  # noqa: E402
from mcp.client.streamable_http import streamable_http_client  # noqa: E402

from envs.registry import load_class  # noqa: E402
from services.app import ServiceSettings, create_app  # noqa: E402
from tests.support.counter_env import CounterEnv  # noqa: E402
from tests.support.server import running_server  # noqa: E402
from tests.support.surface_episodes import ENVS, as_tool_call, expert_action, first_test_tasks, v1_expert_episode  # noqa: E402
from wire.mcp_api import CONTROL_TOOLS, EpisodeContent  # noqa: E402

CONTENT_FIELDS = set(EpisodeContent.model_fields)


@asynccontextmanager
async def mcp_session(url: str) -> AsyncIterator[ClientSession]:
    async with streamable_http_client(url + "/mcp") as (read, write, _):
        async with ClientSession(read, write) as session:
            await session.initialize()
            yield session


async def call(session: ClientSession, name: str, arguments: dict[str, Any] | None = None) -> dict[str, Any]:
    result = await session.call_tool(name, arguments or {})
    assert not result.isError, result.content
    content = result.structuredContent
    assert content is not None and set(content) == CONTENT_FIELDS
    assert result.content[0].text == content["observation"]
    return content


async def call_error(session: ClientSession, name: str, arguments: dict[str, Any] | None = None) -> str:
    result = await session.call_tool(name, arguments or {})
    assert result.isError
    return result.content[0].text


@pytest.fixture(scope="module", params=ENVS)
def env_service(request: pytest.FixtureRequest) -> Iterator[tuple[str, str]]:
    with running_server(create_app(load_class(request.param))) as url:
        yield request.param, url


async def test_lists_the_env_tools_with_their_schemas(env_service: tuple[str, str]) -> None:
    name, url = env_service
    env_cls = load_class(name)
    async with mcp_session(url) as session:
        tools = {t.name: t for t in (await session.list_tools()).tools}
    assert list(tools) == [t.name for t in env_cls.tools] + list(CONTROL_TOOLS)
    for spec in env_cls.tools:
        tool = tools[spec.name]
        parameters = spec.json_schema()["function"]["parameters"]
        assert tool.description == spec.description
        assert tool.inputSchema["properties"] == parameters["properties"] and tool.inputSchema["required"] == parameters["required"]
        assert {"reward", "done", "info"} <= set(tool.outputSchema["properties"])
    assert set(tools["episode_start"].inputSchema["properties"]) == {"task_id", "seed", "split"}


async def test_expert_episodes_match_v1(env_service: tuple[str, str]) -> None:
    """Tool calls (the expert's text actions as calls of the env's tools) give v1's rewards and dones."""
    name, url = env_service
    env_cls = load_class(name)
    for task_id in await asyncio.to_thread(first_test_tasks, url, 2):
        reference = await asyncio.to_thread(v1_expert_episode, url, task_id)
        rewards, dones, actions = [], [], []
        async with mcp_session(url) as session:
            started = await call(session, "episode_start", {"task_id": task_id})
            assert started["task_id"] == task_id and started["observation"] and not started["done"]
            session_id = started["session_id"]
            with httpx.Client(base_url=url, timeout=60) as http:
                assert http.get(f"/v1/sessions/{session_id}").status_code == 200
                content = started
                while not content["done"]:
                    action = expert_action(http, session_id)
                    tool_call = as_tool_call(env_cls, action)
                    assert tool_call is not None, f"the expert's {action!r} names no tool of {name}"
                    content = await call(session, tool_call.name, tool_call.arguments)
                    actions.append(action)
                    rewards.append(content["reward"])
                    dones.append(content["done"])
                    assert content["turn"] == len(actions) and content["session_id"] == session_id
                    assert len(actions) <= len(reference.actions), "longer than the v1 episode"
            current = await call(session, "episode_observation")
            assert current["done"] and current["total_reward"] == pytest.approx(sum(reference.rewards))
            assert "finished" in await call_error(session, tool_call.name, tool_call.arguments)
        assert actions == reference.actions
        assert rewards == reference.rewards and dones == reference.dones
        assert httpx.get(f"{url}/v1/sessions/{session_id}").status_code == 404  # closed with the MCP session


# ----- episode control, errors, limits: the counter env (instant) ----------------------------------------
async def test_episode_control_and_errors() -> None:
    with running_server(create_app(CounterEnv)) as url:
        async with mcp_session(url) as session:
            assert "episode_start first" in await call_error(session, "add", {"amount": "1"})
            assert "episode_start first" in await call_error(session, "episode_observation")
            assert "unknown tool 'teleport'" in await call_error(session, "teleport", {})
            first = await call(session, "episode_start", {"split": "dev", "seed": 1})
            assert first["task_id"] == "counter-11"
            assert "required property" in await call_error(session, "add", {})
            assert "Additional properties" in await call_error(session, "add", {"amount": "1", "extra": "x"})
            assert "unknown task" in await call_error(session, "episode_start", {"task_id": "nope"})
            second = await call(session, "episode_start", {"task_id": "counter-3"})
            assert second["session_id"] != first["session_id"]  # a new episode is a new session; the old one is closed
            assert httpx.get(f"{url}/v1/sessions/{first['session_id']}").status_code == 404
            step = await call(session, "add", {"amount": "4"})
            assert step["observation"] == "Current value: 4." and step["reward"] == 0.0 and step["info"]["progress"] > 0
            closed = await call(session, "episode_close")
            assert closed["closed"] and closed["session_id"] == second["session_id"]
            assert httpx.get(f"{url}/v1/sessions/{second['session_id']}").status_code == 404
        metrics = httpx.get(url + "/metrics").text
    assert 'trajgym_sessions_created_total{env="counter"} 2.0' in metrics
    assert 'trajgym_sessions_closed_total{env="counter",reason="closed"} 2.0' in metrics
    assert 'trajgym_errors_total{env="counter",status="404"}' in metrics


async def test_one_env_session_per_mcp_session_and_the_limit() -> None:
    with running_server(create_app(CounterEnv, settings=ServiceSettings(max_sessions=1))) as url:
        async with mcp_session(url) as one, mcp_session(url) as two:
            await call(one, "episode_start", {})
            assert "session limit reached" in await call_error(two, "episode_start", {})
            assert httpx.post(url + "/v1/sessions", json={}).status_code == 429  # one table for every surface
            await call(one, "episode_close")
            started = await call(two, "episode_start", {})
            assert httpx.get(f"{url}/v1/sessions/{started['session_id']}").status_code == 200
        await asyncio.sleep(0.2)
        assert httpx.get(url + "/healthz").json()["sessions"] == 0  # ending the MCP session closed its env session


def test_readme_lists_each_env_tools_and_surfaces() -> None:
    """The README's per-env surface table names every tool an env's MCP endpoint serves."""
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    for name in ENVS:
        row = next(line for line in readme.splitlines() if line.startswith(f"| `{name}` | `http://HOST:"))
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert cells[3].endswith("/openenv`") and cells[4].endswith("/mcp`")
        assert [t.strip(" `") for t in cells[5].split(",")] == [t.name for t in load_class(name).tools]
