"""Evaluation dashboard over the trajectory store, mounted on the hub at `/dashboard`.

Server-rendered Jinja2 pages (runs overview, model comparison, run detail, trajectory
viewer, live view) backed by a JSON API under `/dashboard/api` (in the hub's OpenAPI);
charts are drawn with the plotly.js bundled in the `plotly` PyPI package, served locally.
"""

from services.dashboard.router import create_dashboard_router

__all__ = ["create_dashboard_router"]
