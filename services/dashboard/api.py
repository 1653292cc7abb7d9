"""JSON API of the dashboard under `/dashboard/api` (tag `dashboard` in the hub's OpenAPI)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, HTTPException, Query

from services.dashboard import queries
from services.dashboard.db import ReadStore
from services.dashboard.schemas import (
    Comparison,
    EpisodeView,
    MAX_PAGE,
    EpisodeId,
    LiveView,
    PerPage,
    RunDetail,
    RunId,
    RunList,
    TaskFilter,
    TaskTable,
)

T = TypeVar("T")
NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"description": "no such run or episode"}}
# Ids, pages and filters out of range answer FastAPI's 422 (documented on every route by FastAPI itself).


async def read(store: ReadStore, fn: Callable[..., T], *args: Any) -> T:
    """Run a query in a worker thread; a missing run/episode is a 404."""
    try:
        return await store.run(fn, *args)
    except queries.NotFound as err:
        raise HTTPException(404, str(err)) from err


def api_router(store: ReadStore) -> APIRouter:
    api = APIRouter(prefix="/dashboard/api", tags=["dashboard"])

    @api.get("/runs", response_model=RunList, summary="Runs overview (newest first, paged)")
    async def runs(page: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 1, per_page: PerPage = 50) -> RunList:
        return await read(store, queries.list_runs, page, per_page)

    @api.get("/compare", response_model=Comparison, summary="Models compared per env; progress rate by turn")
    async def compare(split: Annotated[str | None, Query(max_length=20, description="only this split")] = None) -> Comparison:
        return await read(store, queries.compare_models, split or None)

    @api.get("/runs/{run_id}", response_model=RunDetail, responses=NOT_FOUND,
             summary="One run: summary, scores per split, reward/turns histograms, outcomes")
    async def run(run_id: RunId) -> RunDetail:
        return await read(store, queries.run_detail, run_id)

    @api.get("/runs/{run_id}/tasks", response_model=TaskTable, responses=NOT_FOUND,
             summary="Per-task table of a run (filtered, sorted, paged)")
    async def tasks(run_id: RunId, filters: Annotated[TaskFilter, Query()]) -> TaskTable:
        return await read(store, queries.task_table, run_id, filters)

    @api.get("/runs/{run_id}/live", response_model=LiveView, responses=NOT_FOUND,
             summary="Progress of a (running) collection: counts, workers, rate, ETA, timeline, recent episodes")
    async def live(run_id: RunId) -> LiveView:
        return await read(store, queries.live_view, run_id)

    @api.get("/episodes/{episode_id}", response_model=EpisodeView, responses=NOT_FOUND,
             summary="One episode turn by turn, with the previous/next episode of its task")
    async def episode(episode_id: EpisodeId) -> EpisodeView:
        return await read(store, queries.episode_view, episode_id)

    return api
