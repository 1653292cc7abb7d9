"""HTML pages of the dashboard (Jinja2, autoescaped), rendered from the same documents as the JSON API.

The server renders each page's tables and text; the page's script then fetches the
JSON API for the charts, for filter/page changes of tables, and for live refreshes.
"""

from __future__ import annotations

import json
import math
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlencode

import jinja2
from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from services.dashboard import queries
from services.dashboard.db import ReadStore
from services.dashboard.schemas import MAX_PAGE, OUTCOMES, EpisodeId, PerPage, RunId, TaskFilter

TEMPLATES = Path(__file__).resolve().parent / "templates"
CSP = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
       "font-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'")


def pct(v: float | None) -> str:
    return "—" if v is None else f"{100 * v:.1f}%"


def num(v: float | None, digits: int = 3) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "—"
    if isinstance(v, int) and not isinstance(v, bool):
        return f"{v:,}"
    return f"{v:,.{digits}f}"


def dur(v: float | None) -> str:
    if v is None:
        return "—"
    if v < 60:
        return f"{v:.1f} s"
    if v < 3600:
        return f"{v / 60:.1f} min"
    return f"{v / 3600:.1f} h"


def when(v: datetime | None) -> str:
    return "—" if v is None else v.strftime("%Y-%m-%d %H:%M:%S")


def templates() -> Jinja2Templates:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True,
                             undefined=jinja2.StrictUndefined)
    env.filters.update(pct=pct, num=num, dur=dur, when=when,
                       pretty=lambda v: json.dumps(v, indent=2, sort_keys=True, default=str))
    env.globals.update(OUTCOMES=OUTCOMES, qs=lambda **kw: urlencode({k: v for k, v in kw.items() if v not in (None, "")}))
    return Jinja2Templates(env=env)


def pages_router(store: ReadStore) -> APIRouter:
    tpl = templates()
    router = APIRouter(prefix="/dashboard", include_in_schema=False)

    async def render(request: Request, name: str, status: int = 200, **ctx: Any) -> HTMLResponse:
        resp = tpl.TemplateResponse(request, name, ctx, status_code=status)
        resp.headers["Content-Security-Policy"] = CSP
        resp.headers["X-Content-Type-Options"] = "nosniff"
        return resp

    async def page(request: Request, name: str, fn: Any, *args: Any, **ctx: Any) -> HTMLResponse:
        try:
            data = await store.run(fn, *args)
        except queries.NotFound as err:
            return await render(request, "error.html", 404, page="error", message=str(err))
        return await render(request, name, data=data, **ctx)

    @router.get("", response_class=HTMLResponse)
    async def runs(request: Request, page_no: Annotated[int, Query(alias="page", ge=1, le=MAX_PAGE)] = 1,
                   per_page: PerPage = 50) -> HTMLResponse:
        return await page(request, "runs.html", queries.list_runs, page_no, per_page, page="runs")

    @router.get("/compare", response_class=HTMLResponse)
    async def compare(request: Request, split: Annotated[str | None, Query(max_length=20)] = None) -> HTMLResponse:
        return await page(request, "compare.html", queries.compare_models, split or None, page="compare")

    @router.get("/runs/{run_id}", response_class=HTMLResponse)
    async def run(request: Request, run_id: RunId, filters: Annotated[TaskFilter, Query()]) -> HTMLResponse:
        def both(s: ReadStore) -> tuple[Any, Any]:
            return queries.run_detail(s, run_id), queries.task_table(s, run_id, filters)

        try:
            detail, table = await store.run(both)
        except queries.NotFound as err:
            return await render(request, "error.html", 404, page="error", message=str(err))
        return await render(request, "run.html", page="run", data=detail, table=table)

    @router.get("/runs/{run_id}/live", response_class=HTMLResponse)
    async def live(request: Request, run_id: RunId,
                   refresh: Annotated[float, Query(ge=0.2, le=600)] = 2.0) -> HTMLResponse:
        return await page(request, "live.html", queries.live_view, run_id, page="live", refresh=refresh)

    @router.get("/episodes/{episode_id}", response_class=HTMLResponse)
    async def episode(request: Request, episode_id: EpisodeId) -> HTMLResponse:
        return await page(request, "episode.html", queries.episode_view, episode_id, page="episode")

    return router
