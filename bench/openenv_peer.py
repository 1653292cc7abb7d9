"""The counter test env as an OpenEnv `Environment`, served by OpenEnv's own server: the peer row of bench_service.py.

OpenEnv (PyPI `openenv`) writes an env as an `Environment` subclass (`reset`, `step`, `state`) with
pydantic `Action` / `Observation` subclasses, and serves it with `openenv.core.env_server.create_app`
(FastAPI: HTTP routes plus the `/ws` session protocol). The env work is tests/support/counter_env.py's
`CounterEnv`, delegated to (same parsing, same turn limit, same observation fields), so that the two
servers differ only in how they serve it. `SUPPORTS_CONCURRENT_SESSIONS` lets one server hold many
sessions; OpenEnv then runs each session's sync `reset`/`step` in that session's own one-thread
executor, as trajgym runs CounterEnv's steps (`step_in_thread`) in worker threads.

OpenEnv's WebSocket protocol (`WS /ws`, one session per connection, which it opens on connect):

    → {"type": "reset", "data": {"seed": 3}}           ← {"type": "observation", "data": {"observation": {...}, "reward": null, "done": false}}
    → {"type": "step", "data": {"action": "add[1]"}}   ← {"type": "observation", "data": {..., "reward": 0.0, "done": false}}
    → {"type": "close"}                                 (or disconnect); errors answer {"type": "error", "data": {"message", "code"}}

A next `reset` on the same connection starts the next episode.

    python -m bench.openenv_peer --port P   (uvicorn with the env service's settings, see common.serve_app)
"""

from __future__ import annotations

import uuid
from typing import Any

from openenv.core.env_server import Action, Environment, Observation, State, create_app
from pydantic import Field

from tests.support.counter_env import CounterData, CounterEnv


class CounterAction(Action):
    action: str = Field(max_length=10_000, description="ReAct text: add[1..9] or finish[n]")


class CounterObservation(Observation):
    task_id: str = ""
    observation: str = ""
    truncated: bool = False
    turn: int = 0
    valid_actions: list[str] | None = None
    info: dict[str, Any] = Field(default_factory=dict)


class OpenEnvCounter(Environment[CounterAction, CounterObservation, State]):
    """One session: a `CounterEnv` over the data shared by all sessions (as trajgym's EnvData is)."""

    SUPPORTS_CONCURRENT_SESSIONS = True
    data: CounterData = CounterEnv.load_data()

    def __init__(self) -> None:
        super().__init__()
        self._env = CounterEnv(self.data)
        self._state = State()

    def reset(self, seed: int | None = None, episode_id: str | None = None, task_id: str | None = None,
              **kwargs: Any) -> CounterObservation:
        obs = self._env.reset(task_id=task_id, seed=seed)
        self._state = State(episode_id=episode_id or uuid.uuid4().hex, step_count=0)
        return CounterObservation(task_id=obs.task_id, observation=obs.observation, valid_actions=obs.valid_actions,
                                  info=obs.info)

    def step(self, action: CounterAction, timeout_s: float | None = None, **kwargs: Any) -> CounterObservation:
        result = self._env.step(action.action)
        self._state.step_count += 1
        return CounterObservation(observation=result.observation, reward=result.reward, done=result.done,
                                  truncated=result.truncated, turn=self._env.turns, valid_actions=result.valid_actions,
                                  info=result.info)

    @property
    def state(self) -> State:
        return self._state


app = create_app(OpenEnvCounter, CounterAction, CounterObservation, env_name="counter", max_concurrent_envs=100_000)


if __name__ == "__main__":
    from bench.common import serve_app

    serve_app(app)
