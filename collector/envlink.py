"""The collector's view of an env: one service URL (`EnvLink`) or a name placed on replicas by the hub
(`PlacedEnvLink`); `AsyncEnvClient` calls behind a semaphore, timed. Session operations (create,
steps, expert, close) go over each service's session channel where it offers one, else over v1."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from clients.env_client import AsyncEnvClient
from wire.errors import EnvUnavailable
from envs.types import EnvInfo, ToolCall
from wire.env_api import SessionCreated, StepResponse


class EnvLink:
    def __init__(self, url: str, *, concurrency: int, timeout: float) -> None:
        self.url = url
        self.client = AsyncEnvClient(url, timeout=timeout, max_connections=concurrency, channel=True)
        self._sem = asyncio.Semaphore(concurrency)

    async def aclose(self) -> None:
        await self.client.aclose()

    async def info(self) -> EnvInfo:
        return await self.client.info()

    async def task_list(self, split: str | None) -> list[tuple[str, str]]:
        out: list[tuple[str, str]] = []
        offset = 0
        while True:
            page = await self.client.tasks(split, offset=offset, limit=10_000)
            out.extend((t.task_id, t.split.value) for t in page.tasks)
            offset += len(page.tasks)
            if not page.tasks or offset >= page.total:
                return out

    async def create(self, task_id: str) -> tuple[SessionCreated, float]:
        async with self._sem:
            t0 = time.perf_counter()
            created = await self.client.create(task_id=task_id)
            return created, time.perf_counter() - t0

    async def step(self, session_id: str, action: str | ToolCall | dict[str, Any]) -> tuple[StepResponse, float]:
        async with self._sem:
            t0 = time.perf_counter()
            result = await self.client.step(session_id, action)
            return result, time.perf_counter() - t0

    async def expert(self, session_id: str) -> tuple[str, float]:
        async with self._sem:
            t0 = time.perf_counter()
            action = await self.client.expert_action(session_id)
            return action, time.perf_counter() - t0

    async def close(self, session_id: str) -> None:
        async with self._sem:
            await self.client.close(session_id)


class PlacedEnvLink(EnvLink):
    """An env resolved by name through the hub: each episode runs on the least-loaded healthy
    replica and stays there (sticky: create, steps, expert and close of one session go to the
    replica that created it). A replica that does not answer is a placement miss: another one is
    used, and `NoHealthyReplica` comes only when none answers after the placement's wait for the hub.
    A replica that dies mid-episode surfaces as `EnvUnavailable`; the lease is released as failed
    (the replica cools down) and the episode's retry is placed elsewhere."""

    def __init__(self, hub_url: str, name: str, *, concurrency: int, timeout: float, token: str | None = None) -> None:
        from clients.hub_client import Placement, RegistryClient

        self.url = f"{hub_url.rstrip('/')}#{name}"
        self.registry = RegistryClient(hub_url, token=token)
        self.placement = Placement(self.registry, name, env_timeout=timeout, max_connections=concurrency, channel=True)
        self._sem = asyncio.Semaphore(concurrency)
        self._leases: dict[str, Any] = {}

    async def aclose(self) -> None:
        await self.placement.aclose()
        await self.registry.aclose()

    async def info(self) -> EnvInfo:
        return await self.placement.info()

    async def task_list(self, split: str | None) -> list[tuple[str, str]]:
        """The task list from some healthy replica; a replica that dies meanwhile is a placement miss
        (it cools down, another is asked). `NoHealthyReplica` once the placement's wait for the hub is over."""
        while True:
            lease = await self.placement.acquire()
            self.client = lease.client
            try:
                return await super().task_list(split)
            except EnvUnavailable:
                lease.release(failed=True)
            finally:
                lease.release()

    async def _on_lease(self, session_id: str, call: Any) -> Any:
        lease = self._leases[session_id]
        try:
            return await call(lease.client)
        except EnvUnavailable:
            self._leases.pop(session_id, None)
            lease.release(failed=True)
            raise

    async def create(self, task_id: str) -> tuple[SessionCreated, float]:
        async with self._sem:
            t0 = time.perf_counter()
            lease = await self.placement.acquire()
            try:
                created = await lease.client.create(task_id=task_id)
            except EnvUnavailable:
                lease.release(failed=True)
                raise
            except BaseException:
                lease.release()
                raise
            self._leases[created.session_id] = lease
            return created, time.perf_counter() - t0

    async def step(self, session_id: str, action: str | ToolCall | dict[str, Any]) -> tuple[StepResponse, float]:
        async with self._sem:
            t0 = time.perf_counter()
            result = await self._on_lease(session_id, lambda c: c.step(session_id, action))
            return result, time.perf_counter() - t0

    async def expert(self, session_id: str) -> tuple[str, float]:
        async with self._sem:
            t0 = time.perf_counter()
            action = await self._on_lease(session_id, lambda c: c.expert_action(session_id))
            return action, time.perf_counter() - t0

    async def close(self, session_id: str) -> None:
        lease = self._leases.pop(session_id, None)
        if lease is None:  # already released (its replica failed)
            return
        try:
            async with self._sem:
                await lease.client.close(session_id)
        finally:
            lease.release()


def open_env_link(env: str, hub: str | None, *, concurrency: int, timeout: float) -> EnvLink:
    """A URL → that service; a name → placement through the hub, else TRAJGYM_ENV_URL_<NAME>."""
    from collector.config import is_url, resolve_env_url

    if not is_url(env) and hub:
        return PlacedEnvLink(hub, env, concurrency=concurrency, timeout=timeout)
    return EnvLink(resolve_env_url(env), concurrency=concurrency, timeout=timeout)
