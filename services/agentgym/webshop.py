"""AgentGym's WebShop server (agentenv-webshop) on trajgym's web shop.

The routes and shapes of the original: ``/create`` → a bare integer; ``/reset {env_idx,
session_id}`` → ``[observation, null]``; ``/step`` → ``{state, reward, done, info: null}``;
``/observation``, ``/instruction_text`` (strings); ``/available_actions`` →
``{has_search_bar, clickables}``; ``/state`` → ``{url, html, instruction_text}``;
``/list_envs``; ``GET /`` → ``"ok"``; and ``/close``, which AgentGym's client has.

`session_id` N is WebShop's goal N — ``SimServer`` takes ``goals[session_id]`` after its
``random.seed(233); random.shuffle(goals)`` — which is trajgym's task ``webshop-N``; no
`session_id` means a random goal, as in WebShop. As WebShop's text env does, an action it
cannot take — empty, unparseable, or not possible on the page (trajgym's refusals, whose
message is dropped here) — and any action after the purchase leave the page as it is
(reward 0, done false), and there is no turn limit: the client's `max_rounds` ends an episode.
"""

from __future__ import annotations

import random
import re
import sys
from typing import TYPE_CHECKING

from fastapi import APIRouter, Depends

from envs.actions import ActionParseError
from envs.base import StepAfterEnd, UnknownTask
from envs.webshop.env import WebShopEnv
from services.client_key import client_key
from services.sessions import ClientKey
from services.agentgym.instances import InstancePool
from services.sessions import Session
from wire.agentgym_api import (
    EnvIdx,
    WebShopAvailableActions,
    WebShopReset,
    WebShopState,
    WebShopStep,
    WebShopStepResult,
)
from wire.env_api import Closed
from services.agentgym.router import greeting_routes

if TYPE_CHECKING:
    from services.app import EnvService

GOAL_ID = re.compile(r"^webshop-(\d+)$")
SEARCH_BUTTON = "search"  # WebShop's one clickable on the search page: the search button


def _env(session: Session) -> WebShopEnv:
    env = session.env
    assert isinstance(env, WebShopEnv)
    return env


def _page(env: WebShopEnv) -> str:
    """The page as it stands: after the purchase, the done page the last step showed."""
    return env.last_observation if env.done else env.page()


def routes(router: APIRouter, service: EnvService, pool: InstancePool) -> None:
    goals: dict[int, str] = {}

    def goal_task(index: int | None) -> str | None:
        """Task id of WebShop goal `index`; None: a random goal, as WebShop (None if it has none)."""
        assert service.data is not None
        if not goals:
            goals.update({int(m[1]): t for t in service.data.task_ids() if (m := GOAL_ID.match(t))})
        if index is None:
            return random.choice(list(goals.values())) if goals else None
        task_id = goals.get(index)
        if task_id is None:
            span = f"0–{max(goals)}" if goals else "none"
            raise UnknownTask(f"WebShop goal {index} is not served: this service serves WebShop goals {span} "
                              f"({len(goals)} goals, WebShop's shuffled goal order)")
        return task_id

    greeting_routes(router, list_envs=True)

    @router.post("/create", response_model=int, summary="AgentGym: create an instance → its integer id")
    async def create(client: ClientKey = Depends(client_key)) -> int:
        session = await pool.create(goal_task(None), client)
        session.env.max_turns = sys.maxsize  # type: ignore[misc]  # WebShop has no turn limit
        assert session.agentgym_index is not None
        return session.agentgym_index

    @router.post("/reset", response_model=tuple[str, None], summary="AgentGym: go to WebShop goal `session_id`")
    async def reset(body: WebShopReset) -> tuple[str, None]:
        session = pool.get(body.env_idx)
        index = body.session_id if body.session_id is not None else body.idx
        obs = await pool.reset(session, session.env.reset, goal_task(index), None, None)
        return obs.observation, None

    @router.post("/step", response_model=WebShopStepResult, summary="AgentGym: search[...] or click[...]")
    async def step(body: WebShopStep) -> WebShopStepResult:
        session = pool.get(body.env_idx)
        env = _env(session)
        if env.done:
            return WebShopStepResult(state=_page(env), reward=0.0, done=False)
        try:
            result = await service.step(session, body.action)
        except (ActionParseError, StepAfterEnd):
            return WebShopStepResult(state=_page(env), reward=0.0, done=False)
        if result.info.get("invalid_action"):  # WebShop does nothing: the page stays as it is
            return WebShopStepResult(state=_page(env), reward=0.0, done=False)
        return WebShopStepResult(state=result.observation, reward=result.reward, done=result.done)

    @router.get("/observation", response_model=str, summary="AgentGym: the current page as text")
    async def observation(env_idx: int) -> str:
        return pool.get(env_idx).env.last_observation

    @router.get("/available_actions", response_model=WebShopAvailableActions, summary="AgentGym: search bar and clickables")
    async def available_actions(env_idx: int) -> WebShopAvailableActions:
        valid = pool.get(env_idx).env.valid_actions() or []
        if any(a.startswith("search[") for a in valid):
            return WebShopAvailableActions(has_search_bar=True, clickables=[SEARCH_BUTTON])
        clicks = [a[len("click["):-1].lower() for a in valid if a.startswith("click[") and a.endswith("]")]
        return WebShopAvailableActions(has_search_bar=False, clickables=clicks)

    def instruction(session: Session) -> str:
        task = session.env.task
        return f"Instruction: {task.instruction if task else ''}"

    @router.get("/instruction_text", response_model=str, summary="AgentGym: the goal's instruction")
    async def instruction_text(env_idx: int) -> str:
        return instruction(pool.get(env_idx))

    @router.get("/state", response_model=WebShopState, summary="AgentGym: url, html (trajgym renders none) and instruction")
    async def state(env_idx: int) -> WebShopState:
        return WebShopState(url="", html="", instruction_text=instruction(pool.get(env_idx)))

    @router.post("/close", response_model=Closed, summary="AgentGym: close the instance")
    async def close(body: EnvIdx) -> Closed:
        session = await pool.close(body.env_idx)
        return Closed(session_id=session.id)
