"""`create_app(EnvClass)`: the one generic HTTP service every trajgym env runs in.

Versioned API under `/v1` (sessions, steps, valid actions, expert, tasks, info),
probes (`/healthz`, `/readyz`), Prometheus `/metrics`, and the AgentGym-compatible
surface from `services.agentgym`. Env errors become real HTTP statuses with a
JSON `{"detail": ...}` body: 404 unknown session/task, 409 finished episode,
422 malformed action or body, 429 (+ Retry-After) when the session table is full or
the client holds its quota of sessions, 403 when the expert route is disabled, and 500
with the exception's type and text when env code raises anything else (a bug of the
env: clients record it as an env error).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from concurrent.futures import Future, ThreadPoolExecutor
from collections.abc import AsyncIterator, Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TypeVar

import anyio
from fastapi import APIRouter, Depends, FastAPI, Query, Request, Response, WebSocket
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, model_validator

from envs.base import Env, EnvData
from envs.types import EnvInfo, Split, StepResult
from services.body_limit import BodyLimitMiddleware
from services.crash_guard import CrashGuardMiddleware
from services.client_key import client_key
from services.channel import serve_channel
from services.fast_path import EnvServiceApp, step_response_json
from services.error_status import ERROR_STATUS, ExpertDisabled, detail_of, retry_after_of
from services.prometheus_metrics import ServiceMetrics
from services.step_policy import StepPlacer, StepPolicyName, policy_of, timed, timed_inline
from wire.errors import EpisodeFinished
from wire.channel_api import CHANNEL_PATH
from wire.surfaces import ServiceInfo, surfaces
from wire.env_api import (
    ERROR_RESPONSES,
    Closed,
    CreateSession,
    ExpertAction,
    MAX_COUNT,
    Health,
    SessionCreated,
    SessionState,
    StepRequest,
    StepResponse,
    TaskList,
    ValidActions,
)
from services.sessions import LOCAL, ClientKey, Session, SessionManager

log = logging.getLogger("trajgym.service")
T = TypeVar("T")


class ServiceSettings(BaseModel):
    """Limits and switches of one env service (CLI flags of `trajgym serve`)."""

    max_sessions: int = Field(default=4096, ge=1, le=MAX_COUNT)
    max_sessions_per_client: int | None = Field(default=None, ge=1, description="sessions one client (address + "
                                                "X-Trajgym-Client id) may hold; default a quarter of max_sessions, at least 64")
    max_sessions_per_address: int | None = Field(default=None, ge=1, description="sessions one peer address may hold "
                                                 "whatever ids it sends; default half of max_sessions, at least 128")
    session_ttl: float = Field(default=900.0, gt=0, description="seconds a session may stay idle")
    reap_interval: float | None = Field(default=None, gt=0)
    expert_enabled: bool = True
    max_body_bytes: int = Field(default=1 << 20, ge=1024)
    worker_threads: int = Field(default=4, ge=1, description="threads that run env code off the event loop")
    step_policy: StepPolicyName | None = Field(default=None, description="where env calls run: adaptive, inline or thread "
                                               "(services/step_policy.py); default the env's own declaration")

    channel_in_flight: int = Field(default=4096, ge=1, le=MAX_COUNT, description="requests one session channel may have "
                                   "accepted and not yet answered (then it stops reading: back-pressure)")
    channel_idle_timeout: float = Field(default=300.0, gt=0, description="seconds a session channel with nothing in flight "
                                        "stays open without a frame")

    @model_validator(mode="after")
    def _quotas(self) -> "ServiceSettings":
        # None means the default share; never more than the table itself.
        per_client = self.max_sessions_per_client or max(self.max_sessions // 4, 64)
        per_address = self.max_sessions_per_address or max(self.max_sessions // 2, 128)
        self.max_sessions_per_client = min(per_client, self.max_sessions)
        self.max_sessions_per_address = min(per_address, self.max_sessions)
        return self


class EnvService:
    """State of one running env service: the env class, its shared data, the session table."""

    def __init__(self, env_cls: type[Env], settings: ServiceSettings, data: EnvData | None, data_dir: Path | None) -> None:
        self.env_cls = env_cls
        self.settings = settings
        self.data = data
        self.data_dir = data_dir
        self.metrics = ServiceMetrics(env_cls.name)
        self.sessions = SessionManager(settings.max_sessions, settings.session_ttl, on_close=self._closed,
                                       per_client=settings.max_sessions_per_client, per_address=settings.max_sessions_per_address)
        self.ready = data is not None
        threads = max(settings.worker_threads, settings.max_sessions) if env_cls.long_steps else settings.worker_threads
        self.executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix=f"{env_cls.name}-env")
        self.placer = StepPlacer(policy_of(env_cls, settings.step_policy))
        self._info: EnvInfo | None = None

    def _closed(self, session: Session, reason: str) -> None:
        """Env cleanup (dropping a database copy, a server-side schema) runs where the step policy places
        `close`: on the loop once measured cheap, else in a worker thread."""
        self.metrics.closed(reason)
        place = self.placer.place("close")
        if place.inline:
            _, wall = timed_inline(self._close_env, session)
            place.measured(wall, 0.0, True)
            return
        future = self.executor.submit(timed, self._close_env, session)
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # closed outside the service's loop (no measurement then)
            return

        def measured(done: Future[tuple[None, float, float]]) -> None:
            _, wall, cpu = done.result()
            loop.call_soon_threadsafe(place.measured, wall, cpu, False)

        future.add_done_callback(measured)

    @staticmethod
    def _close_env(session: Session) -> None:
        try:
            session.env.close()
        except Exception:  # a failing cleanup must not keep a session alive
            log.exception("env close failed for session %s", session.id)

    def close_now(self, session_id: str) -> bool:
        """Close at once unless a step of the session is running (then False: `close_session` waits for it).
        `SessionNotFound` if the id is unknown; a session closed before is a no-op (True)."""
        session = self.sessions.peek(session_id)
        if session is not None and session.lock.locked():
            return False
        self.sessions.close(session_id)
        return True

    async def close_session(self, session_id: str) -> None:
        """Close after any running step of the session has finished (steps and cleanup never overlap)."""
        if self.close_now(session_id):
            return
        session = self.sessions.get(session_id)
        async with session.lock:
            self.sessions.close(session_id)

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        """Run env code where the step policy places its operation (services/step_policy.py): on the
        loop, or in the service's worker threads; either way its own duration is what the policy learns."""
        place = self.placer.place(getattr(fn, "__name__", "call"))
        if place.inline:
            result, wall = timed_inline(fn, *args)
            place.measured(wall, 0.0, True)
            self.metrics.inline_calls.inc()
            return result
        result, wall, cpu = await asyncio.get_running_loop().run_in_executor(self.executor, timed, fn, *args)
        place.measured(wall, cpu, False)
        return result

    @contextlib.asynccontextmanager
    async def holding(self, session: Session) -> AsyncIterator[Session]:
        """Hold `session`'s lock (its operations run one at a time); `SessionNotFound` if the session was
        closed while this waited for the lock (a step on a closed env would act on freed resources)."""
        async with session.lock:
            self.sessions.check_open(session)
            yield session

    def inline_step_ready(self, session: Session) -> bool:
        """Whether a step of `session` may run right now, synchronously, on the loop: the policy places
        steps inline and no other step of the session is running (per-session serialisation)."""
        return self.placer.place("step").inline and not session.lock.locked()

    def step_inline(self, session: Session, action: Any) -> StepResult:
        """A step run synchronously on the loop (callers check `inline_step_ready` first); as `step`."""
        result, wall = timed_inline(session.env.step, action)
        self.placer.place("step").measured(wall, 0.0, True)
        self.metrics.inline_calls.inc()
        self.record_step(session, wall)
        return result

    def record_step(self, session: Session, took: float) -> None:
        self.metrics.step_latency.observe(took)
        self.metrics.steps.inc()
        session.touch()

    @property
    def info(self) -> EnvInfo:
        if self._info is None:
            assert self.data is not None
            self._info = self.env_cls.info(self.data)
        return self._info

    async def open_session(self, task_id: str | None, seed: int | None, split: Split | None, agentgym: bool = False,
                           client: ClientKey = LOCAL) -> tuple[Session, Any]:
        self.sessions.reserve(client)
        try:
            env = self.env_cls(self.data)  # type: ignore[arg-type]
            obs = await self.call(env.reset, task_id, seed, split)
        except BaseException:
            self.sessions.release(client)
            raise
        session = self.sessions.add(env, agentgym=agentgym, client=client)
        self.metrics.sessions_created.inc()
        self.metrics.sessions_open.inc()
        return session, obs

    async def step(self, session: Session, action: Any) -> StepResult:
        if self.inline_step_ready(session):
            return self.step_inline(session, action)
        async with self.holding(session):
            started = time.perf_counter()
            result = await self.call(session.env.step, action)
            self.record_step(session, time.perf_counter() - started)
            return result

    # ----- the v1 operations, shared by the v1 routes and the session channel ------------------------
    async def create(self, body: CreateSession, client: ClientKey = LOCAL) -> SessionCreated:
        session, obs = await self.open_session(body.task_id, body.seed, body.split, client=client)
        return SessionCreated(session_id=session.id, task_id=obs.task_id, instruction=obs.instruction,
                              observation=obs.observation, valid_actions=obs.valid_actions, info=obs.info)

    @staticmethod
    def state(s: Session) -> SessionState:
        env = s.env
        return SessionState(
            session_id=s.id, task_id=env.task.task_id if env.task else None, instruction=env.task.instruction if env.task else "",
            observation=env.last_observation, turns=env.turns, done=env.done, total_reward=env.total_reward,
            progress=env.progress(), valid_actions=None if env.done else env.valid_actions(),
            created_at=datetime.fromtimestamp(s.created_at, timezone.utc),
            last_used_at=datetime.fromtimestamp(time.time() - (time.monotonic() - s.last_used), timezone.utc),
        )

    @staticmethod
    def valid_actions(s: Session) -> ValidActions:
        return ValidActions(valid_actions=None if s.env.done else s.env.valid_actions())

    async def expert(self, session_id: str) -> ExpertAction:
        if not self.settings.expert_enabled:
            raise ExpertDisabled("the expert is disabled on this service (--no-expert)")
        s = self.sessions.get(session_id)
        if s.env.done:
            raise EpisodeFinished("the episode is finished")
        async with self.holding(s):
            return ExpertAction(action=await self.call(s.env.expert_action))

    async def reaper(self) -> None:
        interval = self.settings.reap_interval or min(30.0, self.settings.session_ttl / 2)
        while True:
            await asyncio.sleep(interval)
            if reaped := self.sessions.reap():
                log.info("reaped %d idle sessions", reaped)


def _error_handler(service: EnvService, status: int) -> Callable[[Request, Exception], Any]:
    async def handle(_: Request, exc: Exception) -> JSONResponse:
        service.metrics.error(status)
        retry_after = retry_after_of(exc)
        headers = {"Retry-After": str(retry_after)} if retry_after is not None else None
        return JSONResponse({"detail": detail_of(exc)}, status_code=status, headers=headers)

    return handle


def create_app(env_cls: type[Env], *, data: EnvData | None = None, data_dir: Path | None = None,
               settings: ServiceSettings | None = None, on_ready: Callable[[EnvService], Any] | None = None) -> FastAPI:
    """Build the FastAPI app serving `env_cls`. Shared data is `data`, or loaded from `data_dir` at start."""
    settings = settings or ServiceSettings()
    service = EnvService(env_cls, settings, data, data_dir)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if service.data is None:
            service.data = await anyio.to_thread.run_sync(env_cls.load_data, data_dir)
        service.ready = True
        reaper = asyncio.create_task(service.reaper())
        if on_ready is not None:
            await on_ready(service)
        try:
            async with surfaces_running():  # OpenEnv + MCP (services/surfaces.py)
                yield
        finally:
            reaper.cancel()
            service.sessions.close_all()
            service.executor.shutdown(wait=True)  # lets the sessions' cleanups finish
            if service.data is not None:
                service.data.close()

    app = EnvServiceApp(
        title=f"trajgym env service: {env_cls.name}",
        version=env_cls.version,
        description=env_cls.description or f"The {env_cls.name} environment as a service.",
        lifespan=lifespan,
    )
    app.state.service = service
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.add_middleware(CrashGuardMiddleware, on_error=lambda: service.metrics.error(500))
    app.service, app.max_step_bytes = service, settings.max_body_bytes  # the step route's fast path
    for exc_type, status in ERROR_STATUS.items():
        app.add_exception_handler(exc_type, _error_handler(service, status))

    v1 = APIRouter(prefix="/v1", responses=ERROR_RESPONSES)

    @v1.get("/info", response_model=ServiceInfo, summary="Env metadata: tools, action forms, limits, task counts, surfaces")
    async def info(request: Request) -> ServiceInfo:
        return ServiceInfo(**service.info.model_dump(), surfaces=surfaces(str(request.base_url)))

    @v1.get("/tasks", response_model=TaskList, summary="List tasks, optionally by split")
    async def tasks(split: Split | None = None, offset: int = Query(0, ge=0), limit: int = Query(100, ge=1, le=10_000)) -> TaskList:
        assert service.data is not None
        ids = service.data.task_ids(split)
        return TaskList(total=len(ids), tasks=[service.data.tasks[i] for i in ids[offset : offset + limit]])

    @v1.post("/sessions", status_code=201, response_model=SessionCreated, summary="Open a session on a task (id, or seed within a split)")
    async def create_session(body: CreateSession, client: ClientKey = Depends(client_key)) -> SessionCreated:
        return await service.create(body, client)

    @v1.get("/sessions/{session_id}", response_model=SessionState, summary="Current state of a session")
    async def get_session(session_id: str) -> SessionState:
        return service.state(service.sessions.get(session_id))

    @v1.post("/sessions/{session_id}/step", response_model=StepResponse,
             summary="Take one action (text or tool call)")
    async def step(session_id: str, body: StepRequest) -> Response:
        s = service.sessions.get(session_id)
        # Normally answered by services.fast_path before routing; this is the path for what it hands on.
        result = await service.step(s, body.action)
        return Response(step_response_json(s.env.turns, result), media_type="application/json")

    @v1.get("/sessions/{session_id}/actions", response_model=ValidActions, summary="Currently valid actions")
    async def actions(session_id: str) -> ValidActions:
        return service.valid_actions(service.sessions.get(session_id))

    @v1.get("/sessions/{session_id}/expert", response_model=ExpertAction, summary="The expert's next action (off with --no-expert)")
    async def expert(session_id: str) -> ExpertAction:
        return await service.expert(session_id)

    @v1.delete("/sessions/{session_id}", response_model=Closed, summary="Close a session (idempotent)")
    async def close(session_id: str) -> Closed:
        await service.close_session(session_id)
        return Closed(session_id=session_id)

    app.include_router(v1)

    @app.websocket(CHANNEL_PATH)
    async def channel(websocket: WebSocket) -> None:
        """The session channel: v1 operations of many sessions over one WebSocket (wire.channel_api)."""
        await serve_channel(service, websocket)

    @app.get("/healthz", response_model=Health, summary="Liveness")
    async def healthz() -> Health:
        return Health(status="ok", sessions=len(service.sessions), max_sessions=settings.max_sessions)

    @app.get("/readyz", response_model=Health, responses={503: {"model": Health}}, summary="Readiness: data loaded")
    async def readyz() -> Response:
        body = Health(status="ready" if service.ready else "loading", sessions=len(service.sessions), max_sessions=settings.max_sessions)
        return JSONResponse(body.model_dump(), status_code=200 if service.ready else 503)

    @app.get("/metrics", summary="Prometheus metrics", response_class=Response)
    async def metrics() -> Response:
        return Response(service.metrics.render(), media_type="text/plain; version=0.0.4")

    from services.agentgym import agentgym_router
    from services.surfaces import mount_surfaces

    app.include_router(agentgym_router(service))
    surfaces_running = mount_surfaces(app, service)
    return app
