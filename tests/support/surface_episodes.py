"""Expert-guided reference episodes over the v1 API, to compare the other protocol surfaces against."""

from __future__ import annotations

from dataclasses import dataclass, field

import httpx

from envs.base import Env
from envs.actions import UnknownActionForm
from envs.types import ToolCall

ENVS = ["webshop", "household", "sql", "qa"]


@dataclass
class Episode:
    task_id: str
    actions: list[str] = field(default_factory=list)
    rewards: list[float] = field(default_factory=list)
    dones: list[bool] = field(default_factory=list)


def first_test_tasks(url: str, count: int) -> list[str]:
    tasks = httpx.get(f"{url}/v1/tasks", params={"split": "test", "limit": count}).json()["tasks"]
    return [t["task_id"] for t in tasks]


def v1_expert_episode(url: str, task_id: str, max_steps: int = 60) -> Episode:
    """The expert's whole episode on `task_id` through the v1 API."""
    episode = Episode(task_id)
    with httpx.Client(base_url=url, timeout=60) as http:
        session_id = http.post("/v1/sessions", json={"task_id": task_id}).json()["session_id"]
        for _ in range(max_steps):
            action = expert_action(http, session_id)
            step = http.post(f"/v1/sessions/{session_id}/step", json={"action": action}).json()
            episode.actions.append(action)
            episode.rewards.append(step["reward"])
            episode.dones.append(step["done"])
            if step["done"]:
                break
        http.delete(f"/v1/sessions/{session_id}")
    assert episode.dones and episode.dones[-1], f"the expert did not finish {task_id} in {max_steps} steps"
    return episode


def expert_action(http: httpx.Client, session_id: str) -> str:
    response = http.get(f"/v1/sessions/{session_id}/expert")
    assert response.status_code == 200, response.text
    return response.json()["action"]


def as_tool_call(env_cls: type[Env], text: str) -> ToolCall | None:
    """The tool call the text action names (None for text that fits no tool's form)."""
    try:
        parsed = env_cls.parser().parse_text(text)
    except UnknownActionForm:
        return None
    return ToolCall(name=parsed.name, arguments=parsed.arguments)
