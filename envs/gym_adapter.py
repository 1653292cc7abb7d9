"""`gymnasium.Env` adapter for any local trajgym env, and its registration.

Observations and actions are text (`gymnasium.spaces.Text`). `reset(seed=...,
options={"task_id": ..., "split": ...})` picks the task; `step(action)` takes the
text form or a tool-call dict and returns gymnasium's 5-tuple. Every built-in
env is registered as ``trajgym/<Name>-v0`` when `envs` is imported.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gymnasium
from gymnasium import spaces

from envs.base import Env, EnvData
from envs.types import Split

class UnicodeText(spaces.Text):
    """gymnasium's Text space, containing any string up to `max_length` (observations are Unicode)."""

    def contains(self, x: object) -> bool:
        return isinstance(x, str) and self.min_length <= len(x) <= self.max_length


def text_space(max_length: int = 100_000) -> spaces.Text:
    return UnicodeText(max_length=max_length, min_length=0)


class GymEnv(gymnasium.Env[str, str]):
    """Wraps one `Env` class (with its shared data) as a gymnasium env."""

    metadata = {"render_modes": ["ansi"]}

    def __init__(self, env_cls: type[Env] | str, data_dir: str | Path | None = None, data: EnvData | None = None,
                 split: str | None = None, render_mode: str | None = None, modes: dict[str, str] | None = None) -> None:
        from envs.registry import load_class

        self.env_cls = load_class(env_cls) if isinstance(env_cls, str) else env_cls
        self.data = data if data is not None else self.env_cls.load_data(data_dir or None, modes)
        self.split = Split(split) if split else None
        self.render_mode = render_mode
        self.env: Env = self.env_cls(self.data)
        self.observation_space = text_space()
        self.action_space = text_space()

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[str, dict[str, Any]]:
        super().reset(seed=seed)
        options = options or {}
        split = options.get("split", self.split)
        if seed is None and options.get("task_id") is None:
            seed = int(self.np_random.integers(0, 2**31 - 1))
        obs = self.env.reset(task_id=options.get("task_id"), seed=seed, split=Split(split) if split else None)
        info = {"task_id": obs.task_id, "instruction": obs.instruction, "valid_actions": obs.valid_actions, **obs.info}
        return obs.observation, info

    def step(self, action: str | dict[str, Any]) -> tuple[str, float, bool, bool, dict[str, Any]]:
        result = self.env.step(action)
        info = {"valid_actions": result.valid_actions, **result.info}
        terminated = result.done and not result.truncated
        return result.observation, result.reward, terminated, result.truncated, info

    def render(self) -> str | None:
        return self.env.last_observation if self.render_mode == "ansi" else None


def register_all() -> None:
    from envs.registry import ENVS

    for name, (_, gym_id) in ENVS.items():
        if gym_id not in gymnasium.registry:
            gymnasium.register(id=gym_id, entry_point="envs.gym_adapter:GymEnv", kwargs={"env_cls": name})
