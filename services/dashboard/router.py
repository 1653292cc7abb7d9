"""`create_dashboard_router(store_url)`: pages, JSON API and static files of the dashboard, in one router.

Include it in the hub (`create_hub_app(..., extra_routers=[create_dashboard_router(url)])`);
its lifespan closes the read engine when the app stops.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from fastapi import APIRouter, FastAPI

from services.dashboard.api import api_router
from services.dashboard.db import ReadStore
from services.dashboard.pages import pages_router
from services.dashboard.assets import static_router


def create_dashboard_router(store_url: str) -> APIRouter:
    store = ReadStore(store_url)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        try:
            yield
        finally:
            store.engine.dispose()

    router = APIRouter(lifespan=lifespan)
    router.include_router(api_router(store))
    router.include_router(pages_router(store))
    router.include_router(static_router())
    return router
