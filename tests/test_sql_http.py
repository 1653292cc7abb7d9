"""The SQL env served over HTTP: expert episodes through AsyncEnvClient, tool calls, 422s, no gold leak."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from clients.env_client import AsyncEnvClient
from wire.errors import InvalidAction
from envs.sql.data import SqlData, load_builtin
from envs.sql.env import SqlEnv
from services.app import create_app
from tests.support.server import running_server


@pytest.fixture(scope="module")
def data() -> SqlData:
    return load_builtin()


@pytest.fixture(scope="module")
def url(data: SqlData) -> Iterator[str]:
    with running_server(create_app(SqlEnv, data=data)) as base:
        yield base


@pytest.mark.parametrize("task_id", ["builtin-company-top_earners-00", "builtin-shop-purge_cancelled-00"])
async def test_expert_episode_over_http(url: str, task_id: str) -> None:
    async with AsyncEnvClient(url) as client:
        created = await client.create(task_id=task_id)
        assert "Database schema" in created.observation
        sid = created.session_id
        for _ in range(6):
            action = await client.expert_action(sid)
            step = await client.step(sid, action)
            if step.done:
                break
        assert step.done and step.reward == 1.0 and step.info["success"] is True
        state = await client.state(sid)
        assert state.done and state.total_reward == 1.0
        await client.close(sid)


async def test_tool_calls_and_malformed_requests(url: str, data: SqlData) -> None:
    async with AsyncEnvClient(url) as client:
        info = await client.info()
        assert {t["function"]["name"] for t in info.tools} == {"execute_sql", "submit_answer", "commit"}
        assert info.has_expert and info.task_counts["test"] > 0
        created = await client.create(split="dev", seed=3)
        sid = created.session_id
        step = await client.step(sid, {"name": "execute_sql", "arguments": {"sql": "SELECT COUNT(*) FROM sqlite_master"}})
        assert "(1 row)" in step.observation
        with pytest.raises(InvalidAction):
            await client.step(sid, {"name": "execute_sql", "arguments": {}})
        with pytest.raises(InvalidAction):
            await client.step(sid, {"name": "drop_database", "arguments": {}})
        with pytest.raises(InvalidAction):
            await client.step(sid, "   ")
        step = await client.step(sid, {"name": "commit", "arguments": {}})
        assert step.done and step.info["success"] in (True, False)
        await client.close(sid)
    with httpx.Client(base_url=url) as http:
        sid = http.post("/v1/sessions", json={"task_id": "builtin-shop-single-00"}).json()["session_id"]
        assert http.post(f"/v1/sessions/{sid}/step", json={"act": "commit"}).status_code == 422
        assert http.post(f"/v1/sessions/{sid}/step", json={"action": 5}).status_code == 422
        assert http.post(f"/v1/sessions/{sid}/step", json={"action": {"name": "execute_sql", "arguments": {"sql": ["x"]}}}).status_code == 422
        tasks = http.get("/v1/tasks", params={"limit": 10_000}).json()["tasks"]
        listed = str(tasks)
        assert len(tasks) == len(data.tasks)
        assert not any((g.sql or "") in listed for g in data.gold.values())  # gold stays server-side
