"""Integers from a URL are checked against their column's range: 422 with a message, never a 500 (issue 20).

`/dashboard/episodes/9223372036854775808` and `?page=99999999999999999999` overflowed SQLite's
INTEGER inside the query (500). Now every id and page of the dashboard (API and pages), the hub's
replica ids and the env service's integers answer 422 (or 404 inside the range); a hypothesis
sweep of the HTML pages (not in the OpenAPI schema, so not fuzzed by schemathesis) checks the same.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from envs.registry import load_class
from services.app import create_app
from services.dashboard import create_dashboard_router
from services.hub.app import create_hub_app
from store.repo import Store
from tests.support.dashboard_seed import RunSpec, seed_run, tasks_for
from tests.support.server import running_server

TOKEN = "ranges-token"
BIG = 2**63  # one past BIGINT
HUGE = 10**20


@pytest.fixture(scope="module")
def dashboard(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[httpx.Client, int, int]]:
    db: Path = tmp_path_factory.mktemp("ranges") / "store.db"
    store = Store(str(db))
    run_id = seed_run(store, RunSpec("r", "webshop", "m", tasks_for("webshop", 6), seed=1))
    episode_id = store.episodes(run_id)[0]["id"]
    store.close()
    url = f"sqlite:///{db}"
    app = create_hub_app(url, TOKEN, health_checks=False, extra_routers=[create_dashboard_router(url)])
    with running_server(app) as base, httpx.Client(base_url=base, timeout=30,
                                                    headers={"Authorization": f"Bearer {TOKEN}"}) as http:
        yield http, run_id, episode_id


OUT_OF_RANGE = [
    "/dashboard/episodes/{big}", "/dashboard/api/episodes/{big}", "/dashboard/episodes/-{big}1",
    "/dashboard/runs/{big}", "/dashboard/api/runs/{big}", "/dashboard/api/runs/{huge}/tasks",
    "/dashboard/runs/{big}/live", "/dashboard/api/runs/{big}/live", "/dashboard/api/runs/0", "/dashboard/episodes/0",
    "/dashboard?page={huge}", "/dashboard/api/runs?page={huge}", "/dashboard/api/runs?page=0",
    "/dashboard/api/runs?per_page={huge}", "/dashboard/api/runs/{run}/tasks?page={huge}", "/dashboard/runs/{run}?page={huge}",
    "/dashboard/api/runs/{run}/tasks?per_page=501", "/dashboard/runs/{run}/live?refresh=1e400",
]


@pytest.mark.parametrize("path", OUT_OF_RANGE)
def test_out_of_range_integers_are_422_with_a_message(dashboard: tuple[httpx.Client, int, int], path: str) -> None:
    http, run_id, _ = dashboard
    r = http.get(path.format(big=BIG, huge=HUGE, run=run_id))
    assert r.status_code == 422, (path, r.status_code, r.text[:300])
    detail = r.json()["detail"]
    assert detail and all(d["msg"] for d in detail)  # FastAPI's messages name the bound, e.g. "less than or equal to ..."


@pytest.mark.parametrize("path", ["/dashboard/episodes/{max}", "/dashboard/api/runs/{max}", "/dashboard/runs/{max}/live"])
def test_the_largest_id_is_a_404(dashboard: tuple[httpx.Client, int, int], path: str) -> None:
    http, _, _ = dashboard
    assert http.get(path.format(max=BIG - 1)).status_code == 404


def test_the_last_page_is_empty_not_an_error(dashboard: tuple[httpx.Client, int, int]) -> None:
    http, run_id, episode_id = dashboard
    last = 2**31 - 1
    assert http.get(f"/dashboard/api/runs?page={last}&per_page=500").json()["runs"] == []
    assert http.get(f"/dashboard/api/runs/{run_id}/tasks?page={last}&per_page=500").json()["tasks"] == []
    assert http.get(f"/dashboard/runs/{run_id}?page={last}").status_code == 200
    assert http.get(f"/dashboard/episodes/{episode_id}").status_code == 200


def test_hub_replica_ids_past_the_column_are_422(dashboard: tuple[httpx.Client, int, int]) -> None:
    http, _, _ = dashboard
    for rid in (2**31, HUGE, 0, -1):
        r = http.delete(f"/v1/envs/none/replicas/{rid}")
        assert r.status_code == 422, (rid, r.text)
    assert http.delete(f"/v1/envs/none/replicas/{2**31 - 1}").status_code == 404


def test_env_service_integers_never_500() -> None:
    """The env service keeps ids in Python ints (no column): huge values are a 404 or a 422, never a 500."""
    with TestClient(create_app(load_class("qa")), raise_server_exceptions=False) as c:
        answers = [
            c.post("/v1/sessions", json={"seed": BIG}).status_code,
            c.post("/v1/sessions", json={"seed": BIG - 1}).status_code,
            c.get("/v1/tasks", params={"offset": HUGE}).status_code,
            c.get("/v1/tasks", params={"limit": HUGE}).status_code,
            c.post("/create", json={"id": HUGE}).status_code,
            c.get("/observation", params={"id": HUGE}).status_code,
            c.get("/available_actions", params={"env_idx": -HUGE}).status_code,
            c.post("/step", json={"id": HUGE, "action": "x"}).status_code,
            c.post("/reset", json={"id": HUGE, "idx": HUGE}).status_code,
        ]
    assert answers[:4] == [422, 201, 200, 422]
    # the AgentGym routes (SearchQA's original for qa): an unknown or out-of-range index is a 404 or a 422
    assert answers[4] in (200, 404, 422) and all(a in (404, 422) for a in answers[5:]), answers


PAGE_PATHS = ["/dashboard", "/dashboard/compare", "/dashboard/runs/{id}", "/dashboard/runs/{id}/live", "/dashboard/episodes/{id}"]
wide_ints = st.integers(min_value=-(2**70), max_value=2**70) | st.integers(min_value=-5, max_value=60)
junk = st.text(max_size=30) | st.sampled_from(["", "-0", "1e999", "nan", "inf", "9" * 30])
# Mostly well-typed values (so a request reaches the query, not FastAPI's type check), sometimes junk.
PARAMS = {
    "page": wide_ints.map(str), "per_page": wide_ints.map(str), "refresh": st.floats(allow_nan=True).map(str),
    "split": st.sampled_from(["train", "dev", "test", "x" * 21]), "outcome": st.sampled_from(["success", "failure", "nope"]),
    "solved": st.sampled_from(["yes", "no", "maybe"]), "q": st.text(max_size=210), "sort": st.sampled_from(["task_id", "tokens", "x"]),
    "order": st.sampled_from(["asc", "desc", "up"]),
}
query_strategy = st.fixed_dictionaries({}, optional={k: v | junk for k, v in PARAMS.items()})


@settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))
@given(path=st.sampled_from(PAGE_PATHS), id_=wide_ints.map(str) | junk, query=query_strategy)
def test_pages_answer_200_404_or_422_for_any_parameters(dashboard: tuple[httpx.Client, int, int], path: str, id_: str,
                                                        query: dict[str, str]) -> None:
    http, _, _ = dashboard
    r = http.get(path.format(id=quote(id_, safe="") or "x"), params=query)
    # 307: an id ending in an encoded "/" is redirected to the path without the slash (Starlette's redirect_slashes)
    assert r.status_code in (200, 307, 404, 422), (path, id_, query, r.status_code, r.text[:300])
