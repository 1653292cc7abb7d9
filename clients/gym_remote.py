"""`RemoteGymEnv`: a `gymnasium.Env` whose episodes run on a remote trajgym env service.

Synchronous (gymnasium's API is), over one pooled `httpx.Client`. `reset(seed=,
options={"task_id", "split"})` opens a new session (closing the previous one);
`step(action)` takes text or a tool-call dict and returns gymnasium's 5-tuple.
"""

from __future__ import annotations

import time
from typing import Any

import gymnasium
import httpx

from clients.bounded import IDENTITY, parse_json, read_httpx_body
from clients.env_client import MAX_BODY_BYTES, process_client_id
from wire.errors import EnvUnavailable, error_for
from envs.gym_adapter import text_space
from envs.types import EnvInfo
from wire.env_api import CLIENT_HEADER, SessionCreated, StepResponse


class RemoteGymEnv(gymnasium.Env[str, str]):
    metadata = {"render_modes": ["ansi"]}

    def __init__(self, base_url: str, split: str | None = None, timeout: float = 60.0, render_mode: str | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.split = split
        self.render_mode = render_mode
        self.timeout = timeout
        self._http = httpx.Client(base_url=self.base_url, timeout=timeout, headers={CLIENT_HEADER: process_client_id(), **IDENTITY})
        self.session_id: str | None = None
        self._last_observation = ""
        self.observation_space = text_space()
        self.action_space = text_space()
        self.env_info = EnvInfo.model_validate(self._call("GET", "/v1/info"))

    def _call(self, method: str, path: str, json: Any = None) -> Any:
        deadline = time.monotonic() + self.timeout
        try:
            with self._http.stream(method, path, json=json) as resp:
                body = parse_json(read_httpx_body(resp, MAX_BODY_BYTES, deadline))
        except (httpx.HTTPError, TimeoutError, ValueError) as err:
            raise EnvUnavailable(f"{method} {self.base_url}{path} failed: {type(err).__name__}: {err}") from err
        if resp.status_code >= 400:
            raise error_for(resp.status_code, body, resp.headers.get("Retry-After"))
        return body

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[str, dict[str, Any]]:
        super().reset(seed=seed)
        options = options or {}
        self._close_session()
        if seed is None and options.get("task_id") is None:
            seed = int(self.np_random.integers(0, 2**31 - 1))
        created = SessionCreated.model_validate(self._call("POST", "/v1/sessions", {
            "task_id": options.get("task_id"), "seed": seed, "split": options.get("split", self.split)}))
        self.session_id = created.session_id
        self._last_observation = created.observation
        info = {"task_id": created.task_id, "instruction": created.instruction, "valid_actions": created.valid_actions,
                "session_id": created.session_id, **created.info}
        return created.observation, info

    def step(self, action: str | dict[str, Any]) -> tuple[str, float, bool, bool, dict[str, Any]]:
        if self.session_id is None:
            raise RuntimeError("call reset() before step()")
        result = StepResponse.model_validate(self._call("POST", f"/v1/sessions/{self.session_id}/step", {"action": action}))
        self._last_observation = result.observation
        info = {"valid_actions": result.valid_actions, **result.info}
        return result.observation, result.reward, result.done and not result.truncated, result.truncated, info

    def render(self) -> str | None:
        return self._last_observation if self.render_mode == "ansi" else None

    def _close_session(self) -> None:
        if self.session_id is not None:
            try:
                self._call("DELETE", f"/v1/sessions/{self.session_id}")
            except Exception:  # best effort: an unclosed session expires by the service's TTL
                pass
            self.session_id = None

    def close(self) -> None:
        self._close_session()
        self._http.close()
