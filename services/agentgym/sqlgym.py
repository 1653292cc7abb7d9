"""AgentGym's SqlGym server (agentenv-sqlgym) on trajgym's SQL env.

The routes and shapes of the original: ``/create`` → a bare integer; ``/reset {env_idx,
item_id}`` → ``[observation, null]``; ``/step {env_idx, action}`` → ``{state, reward, done,
info}``; ``/observation`` (a string); ``/list_envs``; ``GET /`` → ``"ok"``; plus ``/close``.

SqlGym is one step: the action is bare SQL (AgentGym's client strips the ```sql fence); it is
executed and the episode ends, reward 1.0 when the result matches the gold. Here that step
is the SQL env's own actions — ``execute_sql`` then ``commit``, which grades the last
query's result (or, for a data-change task, the tables) with the env's grader
(`envs.sql.grading`, in the env's ``grading`` mode) where sqlgym compares result sets. The state is
the result rows as Python prints them, or the database's error, cut to 100 characters + "..."
as SqlGym does. A step after the end runs the same way again on a fresh copy of the task's
database (SqlGym executes and grades every step). `info` carries the grade, not the gold.

`item_id` is AgentGym's numbering: 0–9427 BIRD train, 9428–10961 BIRD dev. trajgym holds no
BIRD question, so those are a 404; its own tasks are item ids 10962 + their position in
``GET /v1/tasks``. The observation is SqlGym's: the database described in sqlgym's
sentences (`services.agentgym.sqlgym_schema`), a blank line, the question.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Depends, HTTPException

from envs.actions import ActionParseError
from envs.sql.env import SqlEnv
from services.client_key import client_key
from services.sessions import ClientKey
from services.agentgym.indices import NamedRange, RangedIndex
from services.agentgym.instances import InstancePool
from services.agentgym.sqlgym_schema import describe_sqlite
from services.sessions import Session
from wire.agentgym_api import EnvIdx, SqlGymReset, SqlGymStep, SqlGymStepResult
from wire.env_api import Closed
from services.agentgym.router import greeting_routes

if TYPE_CHECKING:
    from services.app import EnvService

BIRD = (NamedRange("BIRD train", 0, 9428), NamedRange("BIRD dev", 9428, 10962))
NOT_RESET = "Call reset() to initialize the environment."  # sqlgym's observation before any reset
MAX_STATE_CHARS = 100


@dataclass
class Instance:
    observation: str = NOT_RESET


@dataclass
class Outcome:
    state: str
    reward: float
    info: dict[str, Any]


def _env(session: Session) -> SqlEnv:
    env = session.env
    assert isinstance(env, SqlEnv)
    return env


def _instance(session: Session) -> Instance:
    if session.agentgym_state is None:
        session.agentgym_state = Instance()
    return session.agentgym_state  # type: ignore[no-any-return]


def sqlgym_state(text: str) -> str:
    return text if len(text) <= MAX_STATE_CHARS else text[:MAX_STATE_CHARS] + "..."


def run_sql(env: SqlEnv, sql: str) -> Outcome:
    """SqlGym's step on the SQL env: execute, then grade; a finished episode starts over first."""
    if env.done and env.task is not None:
        env.reset(env.task.task_id)
    error: str | None = None
    if sql.strip():  # SQLite runs an empty string as nothing at all: no rows, no error
        try:
            executed = env.step({"name": "execute_sql", "arguments": {"sql": sql}})
        except ActionParseError as err:
            error = str(err)
        else:
            if executed.info.get("error"):
                error = executed.observation.removeprefix("Error: ")
    graded = env.step({"name": "commit", "arguments": {}})
    state = error if error is not None else str(list(env.last_rows or []))
    return Outcome(state=sqlgym_state(state), reward=float(graded.reward), info=dict(graded.info))


class Descriptions:
    """SqlGym-style database descriptions, built once per database (thread-safe)."""

    def __init__(self) -> None:
        self._cache: dict[str, str] = {}
        self._lock = threading.Lock()

    def of(self, env: SqlEnv) -> str:
        assert env.gold is not None and env.task is not None
        key = env.gold.db
        with self._lock:
            hit = self._cache.get(key)
        if hit is None:
            name = key.rsplit("/", 1)[-1]
            if name.isdigit():  # DB-bench: one database per task, named by its table
                name = str(env.task.meta.get("table") or name)
            hit = describe_sqlite(name, env.data.databases[key].data)
            with self._lock:
                self._cache[key] = hit
        return hit


def routes(router: APIRouter, service: EnvService, pool: InstancePool) -> None:
    indices: list[RangedIndex] = []
    descriptions = Descriptions()

    def index() -> RangedIndex:
        if not indices:
            assert service.data is not None
            indices.append(RangedIndex("SqlGym item_id", BIRD, service.data.task_ids()))
        return indices[0]

    def open_item(env: SqlEnv, task_id: str) -> str:
        env.reset(task_id)
        assert env.task is not None
        return f"{descriptions.of(env)}\n\n{env.task.instruction}"

    greeting_routes(router, list_envs=True)

    @router.post("/create", response_model=int, summary="AgentGym: create an instance → its integer id")
    async def create(client: ClientKey = Depends(client_key)) -> int:
        session = await pool.create(None, client)
        _instance(session)
        assert session.agentgym_index is not None
        return session.agentgym_index

    @router.post("/reset", response_model=tuple[str, None], summary="AgentGym: open SqlGym item `item_id`")
    async def reset(body: SqlGymReset) -> tuple[str, None]:
        session = pool.get(body.env_idx)
        task_id = index().task_for(body.item_id)
        observation = await pool.reset(session, open_item, _env(session), task_id)
        _instance(session).observation = observation
        return observation, None

    @router.post("/step", response_model=SqlGymStepResult, summary="AgentGym: run one SQL statement (ends the episode)")
    async def step(body: SqlGymStep) -> SqlGymStepResult:
        session = pool.get(body.env_idx)
        if _instance(session).observation == NOT_RESET:
            raise HTTPException(409, "call /reset with an item_id first")
        outcome = await pool.run(session, run_sql, _env(session), body.action)
        return SqlGymStepResult(state=outcome.state, reward=outcome.reward, done=True, info=outcome.info)

    @router.get("/observation", response_model=str, summary="AgentGym: the question with its database")
    async def observation(env_idx: int) -> str:
        return _instance(pool.get(env_idx)).observation

    @router.post("/close", response_model=Closed, summary="AgentGym: close the instance")
    async def close(body: EnvIdx) -> Closed:
        session = await pool.close(body.env_idx)
        return Closed(session_id=session.id)
