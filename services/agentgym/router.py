"""`agentgym_router(service)`: the AgentGym routes of one env service, for its env's original."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from fastapi import APIRouter

from services.agentgym.instances import AgentGymSettings, InstancePool
from wire.env_api import ERROR_RESPONSES

if TYPE_CHECKING:
    from services.app import EnvService

Routes = Callable[[APIRouter, "EnvService", InstancePool], None]


def greeting_routes(router: APIRouter, greeting: str = "ok", list_envs: bool = False) -> None:
    """The connectivity check every AgentGym server answers (`GET /`), and, for the originals that have
    it, `GET /list_envs` (empty here: instance ids are private)."""

    @router.get("/", response_model=str, summary="AgentGym: connectivity check")
    async def hello() -> str:
        return greeting

    if list_envs:
        @router.get("/list_envs", response_model=list[int], summary="AgentGym: instance ids (none listed: they are private)")
        async def list_envs_route() -> list[int]:
            return []


def routes_for(env_cls: type) -> Routes:
    """The AgentGym server an env class stands in for (subclasses included); generic otherwise."""
    from envs.household.env import HouseholdEnv
    from envs.qa.env import QaEnv
    from envs.sql.env import SqlEnv
    from envs.webshop.env import WebShopEnv
    from services.agentgym import alfworld, generic, searchqa, sqlgym, webshop

    for base, module in ((WebShopEnv, webshop), (HouseholdEnv, alfworld), (SqlEnv, sqlgym), (QaEnv, searchqa)):
        if issubclass(env_cls, base):
            return module.routes
    return generic.routes


def agentgym_router(service: EnvService, settings: AgentGymSettings | None = None) -> APIRouter:
    router = APIRouter(tags=["AgentGym-compatible"], responses=ERROR_RESPONSES)
    pool = InstancePool(service, settings or AgentGymSettings.from_environ())
    routes_for(service.env_cls)(router, service, pool)
    return router
