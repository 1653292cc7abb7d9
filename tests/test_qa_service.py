"""The QA env served over HTTP: an expert episode via AsyncEnvClient, and malformed requests → 422."""

from __future__ import annotations

import asyncio

import aiohttp

from clients.env_client import AsyncEnvClient
from wire.errors import InvalidAction
from envs.qa.env import QaEnv
from services.app import create_app
from tests.support.server import running_server


async def test_expert_episode_over_http_and_malformed_requests() -> None:
    app = create_app(QaEnv, data=QaEnv.load(None))
    with running_server(app) as url:
        async with AsyncEnvClient(url) as client:
            info = await client.info()
            assert info.name == "qa" and info.has_expert and info.has_progress
            assert info.text_actions == ["search[{entity}]", "lookup[{keyword}]", "finish[{answer}]", "think[{thought}]"]
            created = await client.create(task_id="builtin-005")
            assert created.observation.startswith("Question: Who left his fortune")
            sid = created.session_id
            actions, result = [], None
            while result is None or not result.done:
                actions.append(await client.expert_action(sid))
                result = await client.step(sid, actions[-1])
            assert actions[-1] == "finish[Oskar Halvard]" and len(actions) == 3
            assert result.reward == 1.0 and result.info["success"] is True and result.progress == 1.0

            sid = (await client.create(task_id="builtin-001")).session_id
            for bad in ["", {"name": "search", "arguments": {}}, {"name": "fly", "arguments": {"to": "x"}},
                        {"name": "lookup", "arguments": {"keyword": "a", "extra": "b"}}]:
                try:
                    await client.step(sid, bad)
                except InvalidAction as err:
                    assert err.status == 422
                else:
                    raise AssertionError(f"{bad!r} was accepted")
            state = await client.state(sid)
            assert state.turns == 0  # malformed requests used no turn
            step = await client.step(sid, "lookup[born]")  # ReAct: no page is no refusal, just no results
            assert step.observation == "No more results.\n" and not step.done
        async with aiohttp.ClientSession() as http, http.post(
                f"{url}/v1/sessions/{sid}/step", data="not json", headers={"content-type": "application/json"}) as resp:
            assert resp.status == 422


async def test_concurrent_expert_sessions_share_the_index() -> None:
    data = QaEnv.load(None)
    app = create_app(QaEnv, data=data)
    with running_server(app) as url:
        async with AsyncEnvClient(url) as client:
            async def episode(task_id: str) -> float:
                sid = (await client.create(task_id=task_id)).session_id
                await client.step(sid, "search[river in the north]")  # a miss: BM25 similar titles
                while True:
                    result = await client.step(sid, await client.expert_action(sid))
                    if result.done:
                        await client.close(sid)
                        return result.reward

            rewards = await asyncio.gather(*(episode(t) for t in data.task_ids()))
    assert rewards == [1.0] * len(data.tasks)
