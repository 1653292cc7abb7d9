"""Mount the protocol surfaces beyond v1 and AgentGym on an env service's app: OpenEnv and MCP.

`create_app` calls `mount_surfaces` once; the context manager it returns runs inside the
app's lifespan (the MCP session manager needs a task group for the app's lifetime).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING

from fastapi import FastAPI
from starlette.routing import Route

from services.mcp_surface import McpSurface
from services.openenv_surface import openenv_app
from wire.surfaces import MCP_PATH, OPENENV_PREFIX

if TYPE_CHECKING:
    from services.app import EnvService


def mount_surfaces(app: FastAPI, service: EnvService) -> Callable[[], contextlib.AbstractAsyncContextManager[None]]:
    """OpenEnv under `/openenv`, MCP at `/mcp`; returns what the lifespan must enter."""
    mcp = McpSurface(service)
    app.mount(OPENENV_PREFIX, openenv_app(service))
    app.router.routes.append(Route(MCP_PATH, endpoint=mcp))

    @contextlib.asynccontextmanager
    async def running() -> AsyncIterator[None]:
        async with mcp.run():
            yield

    return running
