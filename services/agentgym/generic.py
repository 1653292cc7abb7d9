"""The AgentGym-style surface of an env that has no AgentGym original (any env but the four).

Instances are named `env_idx` or `id` (both accepted everywhere); `/create` answers a bare
integer when the env declares `agentgym_create_returns_int`, else `{"id": n, "env_idx": n}`.
`/reset` takes the data index as `session_id`, `idx`, `game`, `data_idx` or `item_id`: the
position in the service's task order (``GET /v1/tasks``); one past the end is a 404.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Depends, Query

from envs.base import UnknownTask
from services.agentgym.indices import OwnTasks
from services.agentgym.instances import InstancePool
from services.sessions import Session
from wire.agentgym_api import (
    AgentGymCreate,
    AgentGymObservation,
    AgentGymRef,
    AgentGymReset,
    AgentGymStep,
    AgentGymStepResult,
)
from services.client_key import client_key
from services.sessions import ClientKey
from wire.env_api import Closed
from services.agentgym.router import greeting_routes

if TYPE_CHECKING:
    from services.app import EnvService


def _observation(session: Session) -> AgentGymObservation:
    env = session.env
    index = session.agentgym_index or 0
    return AgentGymObservation(
        id=index, env_idx=index, observation=env.last_observation, available_actions=env.valid_actions() or [],
        task_id=env.task.task_id if env.task else "", instruction=env.task.instruction if env.task else "",
    )


def routes(router: APIRouter, service: EnvService, pool: InstancePool) -> None:
    def task_at(index: int) -> str:
        assert service.data is not None
        own = OwnTasks(service.data.task_ids(), 0)
        task_id = own.task_at(index)
        if task_id is None:
            raise UnknownTask(f"data index {index} is out of range: this service serves {own.describe()}")
        return task_id

    greeting_routes(router)

    @router.post("/create", summary="AgentGym: create an env instance → its integer index")
    async def create(body: AgentGymCreate | None = None, client: ClientKey = Depends(client_key)) -> Any:
        task_id = task_at(body.id) if body and body.id is not None else None
        session = await pool.create(task_id, client)
        index = session.agentgym_index
        return index if service.env_cls.agentgym_create_returns_int else {"id": index, "env_idx": index}

    @router.post("/reset", response_model=AgentGymObservation, summary="AgentGym: reset the instance to a data index")
    async def reset(body: AgentGymReset) -> AgentGymObservation:
        session = pool.get(body.index)
        await pool.reset(session, session.env.reset, task_at(body.data_index), None, None)
        return _observation(session)

    @router.post("/step", response_model=AgentGymStepResult, summary="AgentGym: take a text action")
    async def step(body: AgentGymStep) -> AgentGymStepResult:
        session = pool.get(body.index)
        result = await service.step(session, body.action)
        return AgentGymStepResult(observation=result.observation, state=result.observation, reward=result.reward,
                                  done=result.done, available_actions=result.valid_actions or [], info=result.info)

    @router.get("/observation", response_model=str, summary="AgentGym: the current observation text")
    async def observation(env_idx: int | None = None, id: int | None = Query(None)) -> str:
        ref = AgentGymRef(env_idx=env_idx, id=id)
        return pool.get(ref.index).env.last_observation

    @router.get("/available_actions", response_model=list[str], summary="AgentGym: the currently valid actions")
    async def available_actions(env_idx: int | None = None, id: int | None = Query(None)) -> list[str]:
        ref = AgentGymRef(env_idx=env_idx, id=id)
        return pool.get(ref.index).env.valid_actions() or []

    @router.post("/close", response_model=Closed, summary="AgentGym: close the instance")
    async def close(body: AgentGymRef) -> Closed:
        session = await pool.close(body.index)
        return Closed(session_id=session.id)
