"""AgentGym's ALFWorld server (agentenv-alfworld) on trajgym's household env.

The routes and shapes of the original: ``/create`` → ``{"id": n}``; ``/reset {id, game,
world_type}`` → ``{id, observation, available_actions, task_type}``; ``/step {id, action}`` →
``{observation, reward, available_actions, done}``; ``/observation``, ``/available_actions``
(a list) and ``/detail`` (the instance's info dict); ``GET /`` → ``"This is environment
AlfWorld."``; plus ``/close``, which AgentGym's client has.

`game` is AgentGym's game number (`services.agentgym.alfworld_games`). As the original does,
the first observation drops TextWorld's welcome banner and joins its paragraphs with one
newline; the reward of a step is 1.0 when the game is won; the episode ends when it is won
or after ALFWorld's 50 steps (trajgym's household limit is the same). Once it has ended,
``/step``, ``/observation``, ``/available_actions`` and ``/detail`` answer
``{"error": "The task with environment N has finished."}`` with status 200, as the original.
An empty action gets ALFWorld's "Nothing happens.". Only the text world is served
(``world_type`` "Text").
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Depends, HTTPException

from envs.actions import ActionParseError
from envs.base import StepAfterEnd
from envs.household.commands import NOTHING
from services.client_key import client_key
from services.sessions import ClientKey
from services.agentgym.alfworld_games import GameIndex, find_mappings, mappings_folder, task_type_of
from services.agentgym.instances import InstancePool
from services.sessions import Session
from wire.agentgym_api import (
    AlfWorldCreated,
    AlfWorldDetail,
    AlfWorldError,
    AlfWorldRef,
    AlfWorldReset,
    AlfWorldResetResult,
    AlfWorldStep,
    AlfWorldStepResult,
)
from wire.env_api import Closed
from services.agentgym.router import greeting_routes

if TYPE_CHECKING:
    from services.app import EnvService

WELCOME = "-= Welcome to TextWorld"
WORLD_TYPES = ("Text", "Embody", "Hybrid")


def first_observation(text: str) -> str:
    """AgentGym's reset observation: the welcome banner dropped, the paragraphs joined by one newline."""
    parts = text.split("\n\n")
    if parts and parts[0].startswith(WELCOME):
        parts = parts[1:]
    return "\n".join(parts)


def step_observation(text: str) -> str:
    """AgentGym's `process_ob`: "You arrive at loc N. ..." loses its first sentence."""
    return text[text.find(". ") + 2:] if text.startswith("You arrive at loc ") else text


@dataclass
class Instance:
    """What the original server keeps per id (`self.info[idx]`)."""

    info: dict[str, Any] = field(default_factory=lambda: {"done": False, "reward": 0, "deleted": False})


def _instance(session: Session) -> Instance:
    if session.agentgym_state is None:
        session.agentgym_state = Instance()
    return session.agentgym_state  # type: ignore[no-any-return]


def _finished(index: int) -> AlfWorldError:
    return AlfWorldError(error=f"The task with environment {index} has finished.")


def routes(router: APIRouter, service: EnvService, pool: InstancePool) -> None:
    games: list[GameIndex] = []
    folder = mappings_folder()  # read when the service is built; the files when the first game is opened

    def game_index() -> GameIndex:
        if not games:
            assert service.data is not None
            games.append(GameIndex(find_mappings(folder, service.data_dir), service.data.task_ids()))
        return games[0]

    def live(index: int) -> tuple[Session, Instance]:
        session = pool.get(index)
        return session, _instance(session)

    greeting_routes(router, "This is environment AlfWorld.")

    @router.post("/create", response_model=AlfWorldCreated, summary="AgentGym: create an instance → {id}")
    async def create(client: ClientKey = Depends(client_key)) -> AlfWorldCreated:
        session = await pool.create(None, client)
        _instance(session)
        assert session.agentgym_index is not None
        return AlfWorldCreated(id=session.agentgym_index)

    @router.post("/reset", response_model=AlfWorldResetResult, summary="AgentGym: open AgentGym's ALFWorld game `game`")
    async def reset(body: AlfWorldReset) -> AlfWorldResetResult:
        session, inst = live(body.id)
        if body.world_type not in WORLD_TYPES:
            raise HTTPException(422, 'world_type must be one of "Text", "Embody" and "Hybrid"')
        if body.world_type != "Text":
            raise HTTPException(422, f'this service runs the text world only (world_type "Text", not {body.world_type!r})')
        task_id = game_index().task_for(body.game)
        obs = await pool.reset(session, session.env.reset, task_id, None, None)
        observation = first_observation(obs.observation)
        actions = list(obs.valid_actions or [])
        inst.info = {"world_type": body.world_type, "game": body.game, "observation": observation,
                     "available_actions": actions, "done": False, "reward": 0, "deleted": False}
        task = session.env.task
        return AlfWorldResetResult(id=body.id, observation=observation, available_actions=actions,
                                   task_type=task_type_of(task_id, task.meta.get("task_type") if task else None))

    @router.post("/step", response_model=AlfWorldStepResult | AlfWorldError, summary="AgentGym: one ALFWorld command")
    async def step(body: AlfWorldStep) -> AlfWorldStepResult | AlfWorldError:
        session, inst = live(body.id)
        if inst.info.get("done"):
            return _finished(body.id)
        if "observation" not in inst.info:
            return AlfWorldError(error="the environment has not been reset: call /reset first")
        try:
            result = await service.step(session, body.action)
        except StepAfterEnd:
            return _finished(body.id)
        except ActionParseError:
            payload = {"observation": NOTHING, "reward": 0.0, "available_actions": inst.info["available_actions"],
                       "done": False}
        else:
            payload = {"observation": step_observation(result.observation), "reward": float(result.reward),
                       "available_actions": list(result.valid_actions or []), "done": result.done}
        inst.info.update(payload)
        return AlfWorldStepResult(**payload)

    def checked(index: int) -> Instance | AlfWorldError:
        _, inst = live(index)
        if inst.info.get("done"):
            return _finished(index)
        return inst

    @router.get("/observation", response_model=str | AlfWorldError, summary="AgentGym: the last observation")
    async def observation(id: int) -> str | AlfWorldError:
        inst = checked(id)
        if isinstance(inst, AlfWorldError):
            return inst
        return inst.info.get("observation") or AlfWorldError(error="the environment has not been reset: call /reset first")

    @router.get("/available_actions", response_model=list[str] | AlfWorldError, summary="AgentGym: the admissible commands")
    async def available_actions(id: int) -> list[str] | AlfWorldError:
        inst = checked(id)
        if isinstance(inst, AlfWorldError):
            return inst
        return list(inst.info.get("available_actions") or [])

    @router.get("/detail", response_model=AlfWorldDetail | AlfWorldError, response_model_exclude_none=True,
                summary="AgentGym: the instance's info (game, observation, actions, done, reward)")
    async def detail(id: int) -> AlfWorldDetail | AlfWorldError:
        inst = checked(id)
        if isinstance(inst, AlfWorldError):
            return inst
        return AlfWorldDetail(**inst.info)

    @router.post("/close", response_model=Closed, summary="AgentGym: close the instance")
    async def close(body: AlfWorldRef) -> Closed:
        session = await pool.close(body.id)
        return Closed(session_id=session.id)
