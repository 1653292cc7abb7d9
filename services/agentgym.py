"""AgentGym-compatible surface, so AgentGym's env clients work against trajgym unchanged.

AgentGym servers name an env instance by an integer (`env_idx` for WebShop, `id`
for ALFWorld and most others) and expose `/create`, `/reset`, `/step`,
`/observation`, `/available_actions` and `/close`. Both spellings are accepted
everywhere; `/create` answers a bare integer for envs whose AgentGym client
expects one (`Env.agentgym_create_returns_int`), else `{"id": n, "env_idx": n}`.
`/reset` takes the data index as `session_id`, `idx`, `game` or `data_idx`; it
counts over all tasks in the service's task order.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Depends, Query

from wire.env_api import (
    ERROR_RESPONSES,
    AgentGymCreate,
    AgentGymObservation,
    AgentGymRef,
    AgentGymReset,
    AgentGymStep,
    AgentGymStepResult,
    Closed,
)
from services.client_key import client_key
from services.sessions import ClientKey, Session

if TYPE_CHECKING:
    from services.app import EnvService


def _observation(session: Session) -> AgentGymObservation:
    env = session.env
    index = session.agentgym_index or 0
    return AgentGymObservation(
        id=index, env_idx=index, observation=env.last_observation, available_actions=env.valid_actions() or [],
        task_id=env.task.task_id if env.task else "", instruction=env.task.instruction if env.task else "",
    )


def agentgym_router(service: EnvService) -> APIRouter:
    router = APIRouter(tags=["AgentGym-compatible"], responses=ERROR_RESPONSES)

    def task_at(index: int) -> str:
        assert service.data is not None
        ids = service.data.task_ids()
        return ids[index % len(ids)]

    @router.post("/create", summary="AgentGym: create an env instance → its integer index")
    async def create(body: AgentGymCreate | None = None, client: ClientKey = Depends(client_key)) -> Any:
        task_id = task_at(body.id) if body and body.id is not None else None
        session, _ = await service.open_session(task_id, 0, None, agentgym=True, client=client)
        index = session.agentgym_index
        return index if service.env_cls.agentgym_create_returns_int else {"id": index, "env_idx": index}

    @router.post("/reset", response_model=AgentGymObservation, summary="AgentGym: reset the instance to a data index")
    async def reset(body: AgentGymReset) -> AgentGymObservation:
        session = service.sessions.get_agentgym(body.index)
        async with session.lock:
            await service.call(session.env.reset, task_at(body.data_index), None, None)
        return _observation(session)

    @router.post("/step", response_model=AgentGymStepResult, summary="AgentGym: take a text action")
    async def step(body: AgentGymStep) -> AgentGymStepResult:
        session = service.sessions.get_agentgym(body.index)
        result = await service.step(session, body.action)
        return AgentGymStepResult(observation=result.observation, state=result.observation, reward=result.reward,
                                  done=result.done, available_actions=result.valid_actions or [], info=result.info)

    @router.get("/observation", response_model=str, summary="AgentGym: the current observation text")
    async def observation(env_idx: int | None = None, id: int | None = Query(None)) -> str:
        ref = AgentGymRef(env_idx=env_idx, id=id)
        return service.sessions.get_agentgym(ref.index).env.last_observation

    @router.get("/available_actions", response_model=list[str], summary="AgentGym: the currently valid actions")
    async def available_actions(env_idx: int | None = None, id: int | None = Query(None)) -> list[str]:
        ref = AgentGymRef(env_idx=env_idx, id=id)
        return service.sessions.get_agentgym(ref.index).env.valid_actions() or []

    @router.post("/close", response_model=Closed, summary="AgentGym: close the instance")
    async def close(body: AgentGymRef) -> Closed:
        session = service.sessions.get_agentgym(body.index)
        await service.close_session(session.id)
        return Closed(session_id=session.id)

    return router
