"""Static files of the dashboard: its own CSS/JS and the plotly.js bundled in the `plotly` PyPI package.

Only the named files are served (no path from the URL touches the filesystem).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from fastapi import APIRouter, HTTPException
from fastapi.responses import FileResponse

HERE = Path(__file__).resolve().parent


def plotly_js() -> Path | None:
    """`plotly/package_data/plotly.min.js` of the installed `plotly` package (found without importing it)."""
    spec = importlib.util.find_spec("plotly")
    for root in (spec.submodule_search_locations or []) if spec else []:
        path = Path(root) / "package_data" / "plotly.min.js"
        if path.is_file():
            return path
    return None


def static_files() -> dict[str, tuple[Path | None, str]]:
    return {
        "dashboard.js": (HERE / "static" / "dashboard.js", "text/javascript"),
        "dashboard.css": (HERE / "static" / "dashboard.css", "text/css"),
        "plotly.min.js": (plotly_js(), "text/javascript"),
    }


def static_router() -> APIRouter:
    files = static_files()
    router = APIRouter(prefix="/dashboard/static", include_in_schema=False)

    @router.get("/{name}")
    async def static(name: str) -> FileResponse:
        path, media = files.get(name, (None, ""))
        if path is None:
            detail = "plotly is not installed (pip install plotly)" if name == "plotly.min.js" else "not found"
            raise HTTPException(404, detail)
        return FileResponse(path, media_type=media, headers={"Cache-Control": "public, max-age=3600"})

    return router
