"""The household env served over HTTP: an expert episode through AsyncEnvClient, tool calls,
"Nothing happens." for unknown text, and 422 for malformed requests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from clients.env_client import AsyncEnvClient
from wire.errors import InvalidAction
from envs.household.data import HouseholdData, builtin_data
from envs.household.env import HouseholdEnv
from services.app import create_app
from tests.support.server import running_server


@pytest.fixture(scope="module")
def data() -> HouseholdData:
    return builtin_data(n=60)


@pytest.fixture(scope="module")
def url(data: HouseholdData) -> Iterator[str]:
    with running_server(create_app(HouseholdEnv, data=data)) as base:
        yield base


@pytest.mark.parametrize("task_id", ["gen-00000", "gen-00004"])
async def test_expert_episode_over_http(url: str, task_id: str) -> None:
    async with AsyncEnvClient(url) as client:
        created = await client.create(task_id=task_id)
        assert "Your task is to:" in created.observation and created.valid_actions
        sid = created.session_id
        for _ in range(30):
            action = await client.expert_action(sid)
            assert action in (await client.valid_actions(sid) or [])
            step = await client.step(sid, action)
            if step.done:
                break
        assert step.done and step.reward == 1.0 and step.info["success"] is True and step.progress == 1.0
        state = await client.state(sid)
        assert state.done and state.total_reward == 1.0
        await client.close(sid)


async def test_tool_calls_invalid_text_and_malformed_requests(url: str) -> None:
    async with AsyncEnvClient(url) as client:
        info = await client.info()
        assert {"goto", "take", "put", "heat", "cool", "clean", "use", "examine", "look", "inventory"} <= {
            t["function"]["name"] for t in info.tools}
        assert info.has_expert and info.has_progress and info.task_counts["test"] > 0
        sid = (await client.create(split="test", seed=0)).session_id
        valid = await client.valid_actions(sid)
        goto = next(a for a in valid or [] if a.startswith("go to "))
        step = await client.step(sid, {"name": "goto", "arguments": {"recep": goto.removeprefix("go to ")}})
        assert step.observation.startswith("You arrive at ")
        step = await client.step(sid, "dance with the fridge")
        assert step.observation == "Nothing happens." and step.reward == 0.0 and not step.done
        with pytest.raises(InvalidAction):
            await client.step(sid, {"name": "take", "arguments": {"obj": "mug 1"}})
        with pytest.raises(InvalidAction):
            await client.step(sid, {"name": "teleport", "arguments": {}})
        with pytest.raises(InvalidAction):
            await client.step(sid, "   ")
        assert (await client.state(sid)).turns == 2
