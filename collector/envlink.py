"""`EnvLink`: the collector's view of one env service — `AsyncEnvClient` behind a semaphore, timed."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from clients.env_client import AsyncEnvClient
from envs.types import EnvInfo, ToolCall
from services.schemas import SessionCreated, StepResponse


class EnvLink:
    def __init__(self, url: str, *, concurrency: int, timeout: float) -> None:
        self.url = url
        self.client = AsyncEnvClient(url, timeout=timeout, max_connections=concurrency)
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
