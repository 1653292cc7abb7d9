"""One trajectory of the counter env through every surface: v1 HTTP, AgentGym surface,
async client, remote gymnasium wrapper and local gymnasium env — all must agree."""

from __future__ import annotations

import gymnasium
import httpx

from clients.env_client import AsyncEnvClient
from clients.gym_remote import RemoteGymEnv
from envs.gym_adapter import GymEnv
from tests.support.counter_env import CounterEnv

TASK = "counter-3"  # target 26: add[9] add[9] add[8] finish[26]
ACTIONS = ["add[9]", "add[9]", "bogus action", "add[8]", "finish[26]"]


def _expected() -> list[tuple[str, float, bool]]:
    env = CounterEnv(CounterEnv.load())
    env.reset(task_id=TASK)
    return [(r.observation, r.reward, r.done) for r in (env.step(a) for a in ACTIONS)]


def test_v1_http_trajectory(counter_url: str) -> None:
    with httpx.Client(base_url=counter_url) as http:
        created = http.post("/v1/sessions", json={"task_id": TASK})
        assert created.status_code == 201
        sid = created.json()["session_id"]
        got = []
        for action in ACTIONS:
            body = http.post(f"/v1/sessions/{sid}/step", json={"action": action}).json()
            got.append((body["observation"], body["reward"], body["done"]))
        assert got == _expected()
        state = http.get(f"/v1/sessions/{sid}").json()
        assert state["done"] is True and state["turns"] == len(ACTIONS) and state["total_reward"] == 1.0


def test_agentgym_surface_trajectory(counter_url: str) -> None:
    with httpx.Client(base_url=counter_url) as http:
        created = http.post("/create").json()
        index = created["id"]
        assert created["env_idx"] == index
        ids = http.get("/v1/tasks", params={"limit": 1000}).json()["tasks"]
        data_index = [t["task_id"] for t in ids].index(TASK)
        reset = http.post("/reset", json={"id": index, "game": data_index}).json()
        assert reset["task_id"] == TASK
        got = []
        for action in ACTIONS:
            body = http.post("/step", json={"env_idx": index, "action": action}).json()
            assert body["state"] == body["observation"]
            got.append((body["observation"], body["reward"], body["done"]))
        assert got == _expected()
        assert http.get("/observation", params={"env_idx": index}).json() == "Correct!"
        assert http.post("/close", json={"env_idx": index}).status_code == 200
        assert http.get("/observation", params={"env_idx": index}).status_code == 404


async def test_async_client_trajectory(counter_url: str) -> None:
    async with AsyncEnvClient(counter_url) as client:
        created = await client.create(task_id=TASK)
        got = []
        for action in ACTIONS:
            r = await client.step(created.session_id, action)
            got.append((r.observation, r.reward, r.done))
        assert got == _expected()
        await client.close(created.session_id)
        await client.close(created.session_id)  # idempotent


def test_remote_gymnasium_trajectory(counter_url: str) -> None:
    env = RemoteGymEnv(counter_url)
    obs, info = env.reset(options={"task_id": TASK})
    assert info["task_id"] == TASK and "Reach 26" in obs
    got = []
    for action in ACTIONS:
        obs, reward, terminated, truncated, _ = env.step(action)
        got.append((obs, reward, terminated or truncated))
    env.close()
    assert got == _expected()


def test_local_gymnasium_trajectory_and_registration() -> None:
    env = GymEnv(CounterEnv)
    env.reset(options={"task_id": TASK})
    got = []
    for action in ACTIONS:
        obs, reward, terminated, truncated, _ = env.step(action)
        got.append((obs, reward, terminated or truncated))
    assert got == _expected()
    assert env.observation_space.contains("Current value: 3.")
    # every built-in env is registered with gymnasium
    assert {"trajgym/WebShop-v0", "trajgym/Household-v0", "trajgym/Sql-v0", "trajgym/Qa-v0"} <= set(gymnasium.registry)


def test_tool_call_and_text_reach_same_state(counter_url: str) -> None:
    with httpx.Client(base_url=counter_url) as http:
        a = http.post("/v1/sessions", json={"task_id": TASK}).json()["session_id"]
        b = http.post("/v1/sessions", json={"task_id": TASK}).json()["session_id"]
        ra = http.post(f"/v1/sessions/{a}/step", json={"action": "add[4]"}).json()
        rb = http.post(f"/v1/sessions/{b}/step", json={"action": {"name": "add", "arguments": {"amount": "4"}}}).json()
        assert ra == rb


def test_info_tasks_and_probes(counter_url: str) -> None:
    with httpx.Client(base_url=counter_url) as http:
        info = http.get("/v1/info").json()
        assert info["name"] == "counter" and info["has_expert"] and info["has_progress"]
        assert info["task_counts"] == {"train": 15, "dev": 5, "test": 10}
        assert [t["function"]["name"] for t in info["tools"]] == ["add", "finish"]
        tests = http.get("/v1/tasks", params={"split": "test"}).json()
        assert tests["total"] == 10 and all(t["split"] == "test" for t in tests["tasks"])
        assert http.get("/healthz").json()["status"] == "ok"
        assert http.get("/readyz").status_code == 200
        assert "trajgym_steps_total" in http.get("/metrics").text
        assert "/v1/sessions/{session_id}/step" in http.get("/openapi.json").json()["paths"]
