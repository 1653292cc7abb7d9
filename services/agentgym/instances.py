"""AgentGym instances: how long they live, how many there may be, and running env code in one.

AgentGym's clients never close what they open (`BaseTask` creates its clients up front and
`Evaluator` runs episodes without closing), and an evaluation can leave an instance idle for
hours: the clients of the second task of an `Evaluator` wait while the first task's episodes
run, and a large model may think for minutes per turn. So the policy is:

* an AgentGym instance is reaped only after `ttl` idle seconds (default 24 h, env var
  ``TRAJGYM_AGENTGYM_TTL``), not the service's ordinary session TTL (900 s);
* there are at most `max_instances` of them (default: half the session table, env var
  ``TRAJGYM_AGENTGYM_MAX_INSTANCES``). When a `/create` finds them all taken, the least
  recently used one that has been idle longer than the ordinary session TTL is closed to make
  room; if every one was used more recently than that, `/create` answers 429 + Retry-After.

An instance in ordinary use (any request on it within the ordinary TTL) is never closed, and
leaked ones cannot fill the table. Every request on an instance (`/observation` included)
counts as use.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import BaseModel, Field, ValidationError

from services.sessions import LOCAL, ClientKey, Session
from wire.errors import ServerFull

if TYPE_CHECKING:
    from services.app import EnvService

T = TypeVar("T")
TTL_VAR = "TRAJGYM_AGENTGYM_TTL"
MAX_VAR = "TRAJGYM_AGENTGYM_MAX_INSTANCES"


class AgentGymSettings(BaseModel):
    """Lifetime and number of AgentGym instances (see the module docstring)."""

    ttl: float = Field(default=86_400.0, gt=0, description="idle seconds before an AgentGym instance is reaped")
    max_instances: int | None = Field(default=None, ge=1, description="AgentGym instances at most; None: half the session table")

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> "AgentGymSettings":
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for var, key in ((TTL_VAR, "ttl"), (MAX_VAR, "max_instances")):
            if env.get(var, "").strip():
                values[key] = env[var].strip()
        try:
            return cls.model_validate(values)
        except ValidationError as err:
            raise ValueError(f"{TTL_VAR} / {MAX_VAR}: {err}") from err


class InstancePool:
    """The AgentGym instances of one env service (sessions of its table with an integer index)."""

    def __init__(self, service: EnvService, settings: AgentGymSettings) -> None:
        self.service = service
        self.settings = settings
        self.cap = settings.max_instances or max(1, service.settings.max_sessions // 2)
        self._pending = 0

    async def create(self, task_id: str | None, client: ClientKey = LOCAL) -> Session:
        """A new instance for `client` (its per-client session quota applies, as on v1)."""
        self._make_room()
        self._pending += 1
        try:
            session, _ = await self.service.open_session(task_id, None, None, agentgym=True, client=client)
        finally:
            self._pending -= 1
        session.ttl = self.settings.ttl
        return session

    def get(self, index: int) -> Session:
        return self.service.sessions.get_agentgym(index)

    async def close(self, index: int) -> Session:
        session = self.get(index)
        await self.service.close_session(session.id)
        return session

    async def run(self, session: Session, fn: Callable[..., T], *args: Any) -> T:
        """Run one env step of the session (its lock held, where the step policy places it, counted in /metrics)."""
        async with self.service.holding(session):
            started = time.perf_counter()
            result = await self.service.call(fn, *args)
            self.service.record_step(session, time.perf_counter() - started)
            return result

    async def reset(self, session: Session, fn: Callable[..., T], *args: Any) -> T:
        """Run a reset of the session (its lock held, where the step policy places it)."""
        async with session.lock:
            result = await self.service.call(fn, *args)
            session.touch()
            return result

    def _make_room(self) -> None:
        sessions = self.service.sessions.agentgym_sessions()
        if len(sessions) + self._pending < self.cap:
            return
        floor = self.service.settings.session_ttl
        now = time.monotonic()
        idle = [s for s in sessions if now - s.last_used > floor and not s.lock.locked()]
        if idle:
            self.service.sessions.close(min(idle, key=lambda s: s.last_used).id, reason="evicted")
            return
        oldest = min((s.last_used for s in sessions), default=now)
        retry_after = max(1, int(oldest + floor - now) + 1)
        raise ServerFull(f"AgentGym instance limit ({self.cap}) reached and every instance was used in the last "
                         f"{floor:g} s; retry after {retry_after} s", retry_after=retry_after)
