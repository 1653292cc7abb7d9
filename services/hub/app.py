"""`create_hub_app(store_url, token)`: the hub's FastAPI app (env registry, replicas, health checks).

Routes (JSON; errors are `{"detail": ...}`):
  GET    /v1/envs                              list registered envs with their replicas (open)
  GET    /v1/envs/{name}                       one env (open); 404 unknown
  POST   /v1/envs                 (token)      register {urls, name?, meta?, replace_stale?}; reads each
                                               replica's /v1/info: 201, 409 name taken (with replace_stale:
                                               unless the registered env is another env or version with no
                                               replica up — then it is replaced), 422 bad URL/name or no
                                               replica answered /v1/info with a valid document
  DELETE /v1/envs/{name}          (token)      unregister
  POST   /v1/envs/{name}/replicas (token)      add {url, replace?}: 201 (down if unreachable now), 409
                                               duplicate (unless replace: the old entry is replaced)
                                               or serving another env/version
  DELETE /v1/envs/{name}/replicas/{id} (token) remove a replica
  POST   /v1/health/check         (token)      run a health-check round now
At start the hub forgets every replica's status (all `unknown`, re-verified by the first round):
it never lists as up a replica it has not seen healthy since it started.
  GET    /healthz, /readyz                     the hub's own probes
Write routes need `Authorization: Bearer <token>` (401 without, 403 wrong). Other routers
(e.g. a dashboard) are added with `extra_routers=[...]` or `app.include_router` later.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any, TypeVar

import aiohttp
import anyio
from fastapi import APIRouter, Depends, FastAPI, HTTPException, Path, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy.exc import SQLAlchemyError

from services.body_limit import BodyLimitMiddleware
from services.hub.auth import bearer_guard
from services.hub.health import HealthChecker, probe
from wire.hub_api import (
    AddReplica,
    Deleted,
    EnvList,
    EnvRecord,
    HubHealth,
    RegisterEnv,
    Replica,
    check_name,
)
from services.hub.store import Conflict, HubStore, NotFound
from wire.env_api import ErrorBody, UnprocessableBody

log = logging.getLogger("trajgym.hub")
T = TypeVar("T")


class HubSettings(BaseModel):
    """Knobs of the hub (CLI flags of `trajgym hub`)."""

    health_interval: float = Field(default=5.0, gt=0, description="seconds between health-check rounds")
    health_timeout: float = Field(default=3.0, gt=0, description="timeout of one replica probe (s)")
    failures_before_down: int = Field(default=2, ge=1, description="consecutive failed checks before a replica is down")
    remove_after: float | None = Field(default=60.0, gt=0, description="a replica down and not seen up for this long "
                                                                       "is removed (None: kept until deregistered)")
    info_timeout: float = Field(default=10.0, gt=0, description="timeout of reading a replica's /v1/info at registration")
    max_body_bytes: int = Field(default=1 << 20, ge=1024, description="larger request bodies are refused with 413")


# Documented error statuses (OpenAPI): every v1 route, plus 401/403 on the token-guarded write routes.
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    **{status: {"model": ErrorBody} for status in (400, 404, 409, 413)},
    422: {"model": UnprocessableBody},
}
AUTH_RESPONSES: dict[int | str, dict[str, Any]] = {status: {"model": ErrorBody} for status in (401, 403)}


@dataclass
class HubState:
    store: HubStore
    settings: HubSettings
    checker: HealthChecker | None = None
    http: aiohttp.ClientSession | None = None
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    def client(self) -> aiohttp.ClientSession:
        if self.http is None or self.http.closed:
            self.http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=64))
        return self.http


async def _db(fn: Callable[..., T], *args: Any) -> T:
    """Run a (synchronous) store call in a worker thread."""
    return await anyio.to_thread.run_sync(fn, *args)


def create_hub_app(store_url: str, token: str, *, settings: HubSettings | None = None, health_checks: bool = True,
                   extra_routers: Sequence[APIRouter] = ()) -> FastAPI:
    """The hub app. `token` guards the write routes; `health_checks=False` leaves checks to POST /v1/health/check."""
    if not token:
        raise ValueError("the hub needs a token for its write routes (--token or TRAJGYM_HUB_TOKEN)")
    settings = settings or HubSettings()
    state = HubState(store=HubStore(store_url), settings=settings)
    state.checker = HealthChecker(state.store, state.client, interval=settings.health_interval,
                                  timeout=settings.health_timeout, failures_before_down=settings.failures_before_down,
                                  remove_after=settings.remove_after)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await _db(state.store.create_tables)
        # Nothing is handed out before this hub has seen it healthy: the first round runs at once.
        forgotten = await _db(state.store.forget_health)
        if forgotten:
            log.info("hub start: %d registered replica(s) to re-validate", forgotten)
        if health_checks:
            assert state.checker is not None
            state.tasks.append(asyncio.create_task(state.checker.run()))
        try:
            yield
        finally:
            for task in state.tasks:
                task.cancel()
            await asyncio.gather(*state.tasks, return_exceptions=True)
            if state.http is not None:
                await state.http.close()
            await _db(state.store.dispose)

    app = FastAPI(title="trajgym hub", description="Registry of trajgym env services and their replicas.", lifespan=lifespan)
    app.state.hub = state
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)

    @app.exception_handler(NotFound)
    async def _not_found(_: Request, exc: NotFound) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=404)

    @app.exception_handler(Conflict)
    async def _conflict(_: Request, exc: Conflict) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=409)

    write = [Depends(bearer_guard(token))]
    v1 = APIRouter(prefix="/v1", responses=ERROR_RESPONSES)

    @v1.get("/envs", response_model=EnvList, summary="Registered envs and their replicas")
    async def list_envs() -> EnvList:
        return EnvList(envs=await _db(state.store.list_envs))

    @v1.get("/envs/{name}", response_model=EnvRecord, summary="One registered env")
    async def get_env(name: str) -> EnvRecord:
        return await _db(state.store.get_env, name)

    @v1.post("/envs", response_model=EnvRecord, status_code=201, dependencies=write, responses=AUTH_RESPONSES, summary="Register an env (reads its /v1/info)")
    async def register(body: RegisterEnv) -> EnvRecord:
        probes = await asyncio.gather(*(probe(state.client(), url, settings.info_timeout, None, read_info=True)
                                        for url in body.urls))
        answered = {url: info for url, (result, info) in zip(body.urls, probes) if result.ok and info is not None}
        if not answered:
            errors = "; ".join(f"{url}: {result.error}" for url, (result, _) in zip(body.urls, probes))
            raise HTTPException(422, f"no replica answered GET /healthz and GET /v1/info with a valid env document: {errors}")
        kinds = {(i.name, i.version) for i in answered.values()}
        if len(kinds) > 1:
            raise HTTPException(422, f"the replicas serve different envs or versions: {sorted(kinds)}")
        info = next(iter(answered.values()))
        name = body.name or info.name
        try:
            check_name(name)
        except ValueError as err:
            raise HTTPException(422, str(err)) from err
        checks = [(url, result) for url, (result, _) in zip(body.urls, probes)]
        record = await _db(state.store.create_env, name, info.model_dump(mode="json"), body.meta, checks, body.replace_stale)
        log.info("registered env %s (%s %s) with %d replica(s)", name, info.name, info.version, len(checks))
        return record

    @v1.delete("/envs/{name}", response_model=Deleted, dependencies=write, responses=AUTH_RESPONSES, summary="Unregister an env")
    async def unregister(name: str) -> Deleted:
        await _db(state.store.delete_env, name)
        return Deleted(name=name)

    @v1.post("/envs/{name}/replicas", response_model=Replica, status_code=201, dependencies=write, responses=AUTH_RESPONSES, summary="Add a replica")
    async def add_replica(name: str, body: AddReplica) -> Replica:
        env = await _db(state.store.get_env, name)
        result, _ = await probe(state.client(), body.url, settings.info_timeout, (env.env_name, env.version))
        if result.fatal:
            raise HTTPException(409, f"{body.url} {result.error}")
        return await _db(state.store.add_replica, name, body.url, result, body.replace)

    @v1.delete("/envs/{name}/replicas/{replica_id}", response_model=Deleted, dependencies=write, responses=AUTH_RESPONSES, summary="Remove a replica")
    async def remove_replica(name: str, replica_id: Annotated[int, Path(ge=1, le=2**31 - 1)]) -> Deleted:
        await _db(state.store.remove_replica, name, replica_id)
        return Deleted(name=name, replica_id=replica_id)

    @v1.post("/health/check", response_model=EnvList, dependencies=write, responses=AUTH_RESPONSES, summary="Run a health-check round now")
    async def check_now() -> EnvList:
        assert state.checker is not None
        await state.checker.check_once()
        return EnvList(envs=await _db(state.store.list_envs))

    app.include_router(v1)

    @app.get("/healthz", response_model=HubHealth, summary="Liveness")
    async def healthz() -> HubHealth:
        return HubHealth(status="ok")

    @app.get("/readyz", response_model=HubHealth, responses={503: {"model": HubHealth}}, summary="Readiness: the store answers")
    async def readyz() -> JSONResponse:
        try:
            await _db(state.store.ping)
        except (SQLAlchemyError, OSError) as err:  # the database is away
            return JSONResponse(HubHealth(status=f"store unavailable: {type(err).__name__}").model_dump(), status_code=503)
        return JSONResponse(HubHealth(status="ready").model_dump())

    for router in extra_routers:
        app.include_router(router)
    return app
