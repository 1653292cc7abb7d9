"""Dashboard over HTTP (real uvicorn hub): pages' status codes, the JSON API against figures recomputed
in Python from the store, filters and paging, empty store, infra-only run, escaping, OpenAPI, the CLI wiring."""

from __future__ import annotations

import sqlite3
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from store.records import EpisodeRecord, TurnRecord
from store.repo import Store, worker_id
from services.dashboard import create_dashboard_router
from tests.support.dashboard_seed import RunSpec, seed_run, tasks_for
from services.hub.app import create_hub_app
from tests.support.server import running_server

TOKEN = "t0ken"
EVIL = "<script>window.__pwned = 1</script><img src=x onerror=alert(1)>"
PAGES = ["/dashboard", "/dashboard/compare", "/dashboard/compare?split=dev"]


def hub(db: Path) -> Any:
    url = f"sqlite:///{db}"
    return create_hub_app(url, TOKEN, health_checks=False, extra_routers=[create_dashboard_router(url)])


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[httpx.Client, Store, dict[str, int]]]:
    db = tmp_path_factory.mktemp("dash") / "store.db"
    store = Store(str(db))
    ids = {
        "a": seed_run(store, RunSpec("a-webshop", "webshop", "model-a", tasks_for("webshop", 60), samples=2, skill=0.6,
                                     seed=1, inject={"webshop-00003": EVIL})),
        "b": seed_run(store, RunSpec("b-webshop", "webshop", "model-b", tasks_for("webshop", 60), skill=0.3, seed=2)),
        "c": seed_run(store, RunSpec("c-household", "household", "model-a", tasks_for("household", 40), skill=0.4, seed=3)),
        "infra": seed_run(store, RunSpec("infra-only", "webshop", "model-b", tasks_for("webshop", 12), infra_only=True, seed=4)),
        "live": seed_run(store, RunSpec("live", "household", "model-b", tasks_for("household", 30), finish=10,
                                        claim_more=4, seed=5)),
    }
    with running_server(hub(db)) as url, httpx.Client(base_url=url, timeout=30) as http:
        yield http, store, ids
    store.close()


def ok(http: httpx.Client, path: str) -> Any:
    r = http.get(path)
    assert r.status_code == 200, (path, r.status_code, r.text[:500])
    return r.json() if r.headers["content-type"].startswith("application/json") else r.text


def test_every_page_renders(seeded: tuple[httpx.Client, Store, dict[str, int]]) -> None:
    http, store, ids = seeded
    ep = store.episodes(ids["a"])[0]["id"]
    paths = [*PAGES, *(f"/dashboard/runs/{i}" for i in ids.values()), f"/dashboard/runs/{ids['live']}/live",
             f"/dashboard/episodes/{ep}", f"/dashboard/runs/{ids['a']}?outcome=success&solved=yes&sort=mean_reward&order=desc"]
    for path in paths:
        r = http.get(path)
        assert r.status_code == 200, (path, r.text[:500])
        assert r.headers["content-type"].startswith("text/html")
        assert "script-src 'self'" in r.headers["content-security-policy"]
        assert '<script src="/dashboard/static/plotly.min.js"' in r.text
    assert http.get("/dashboard/runs/999999").status_code == 404
    assert http.get("/dashboard/episodes/999999").status_code == 404
    assert http.get("/dashboard/api/runs/999999").status_code == 404
    assert http.get("/dashboard/api/episodes/999999").status_code == 404
    assert http.get("/dashboard/api/runs/1/tasks?sort=nope").status_code == 422
    assert http.get("/dashboard/api/runs/1/tasks?per_page=0").status_code == 422


def test_static_files_are_local_and_whitelisted(seeded: tuple[httpx.Client, Store, dict[str, int]]) -> None:
    http, _, _ = seeded
    r = http.get("/dashboard/static/plotly.min.js")
    assert r.status_code == 200 and "plotly" in r.text[:400] and len(r.content) > 1_000_000
    assert http.get("/dashboard/static/dashboard.js").status_code == 200
    assert http.get("/dashboard/static/dashboard.css").status_code == 200
    for bad in ("../router.py", "..%2Frouter.py", "router.py", "%2e%2e%2f%2e%2e%2fpyproject.toml"):
        assert http.get(f"/dashboard/static/{bad}").status_code == 404


def _expected(store: Store, run_id: int) -> dict[str, Any]:
    eps = store.episodes(run_id)
    done = [e for e in eps if e["status"] == "done"]
    scored = [e for e in done if e["outcome"] != "infra_error"]
    return {"done": len(done), "scored": len(scored), "successes": sum(1 for e in scored if e["success"]),
            "reward": sum(e["reward"] for e in scored) / len(scored) if scored else None,
            "outcomes": Counter(e["outcome"] for e in done), "pending": sum(e["status"] == "pending" for e in eps),
            "tokens": sum((e["prompt_tokens"] or 0) + (e["completion_tokens"] or 0) for e in eps)}


def test_runs_api_matches_the_store(seeded: tuple[httpx.Client, Store, dict[str, int]]) -> None:
    http, store, ids = seeded
    data = ok(http, "/dashboard/api/runs")
    assert data["page"]["total"] == len(ids)
    by_name = {r["name"]: r for r in data["runs"]}
    assert [r["id"] for r in data["runs"]] == sorted(ids.values(), reverse=True)
    for run_id in ids.values():
        exp = _expected(store, run_id)
        run = next(r for r in data["runs"] if r["id"] == run_id)
        assert run["done"] == exp["done"] and run["scored"] == exp["scored"] and run["successes"] == exp["successes"]
        assert run["pending"] == exp["pending"]
        assert run["prompt_tokens"] + run["completion_tokens"] == exp["tokens"]
        assert run["infra_errors"] == exp["outcomes"]["infra_error"]
        if exp["scored"]:
            assert run["success_rate"] == pytest.approx(exp["successes"] / exp["scored"])
            assert run["mean_reward"] == pytest.approx(exp["reward"])
        else:
            assert run["success_rate"] is None and run["mean_reward"] is None
    assert by_name["live"]["state"] == "running" and by_name["a-webshop"]["state"] == "complete"
    assert by_name["a-webshop"]["splits"] == ["dev", "test", "train"]
    paged = ok(http, "/dashboard/api/runs?per_page=2&page=2")
    assert paged["page"] == {"page": 2, "per_page": 2, "total": 5, "pages": 3}
    assert [r["id"] for r in paged["runs"]] == sorted(ids.values(), reverse=True)[2:4]


def test_infra_only_run(seeded: tuple[httpx.Client, Store, dict[str, int]]) -> None:
    http, _, ids = seeded
    detail = ok(http, f"/dashboard/api/runs/{ids['infra']}")
    assert detail["run"]["infra_errors"] == 12 and detail["run"]["scored"] == 0
    assert detail["reward_histogram"] == [] and detail["turns_histogram"] == {}
    assert detail["outcome_counts"] == {"infra_error": 12}
    assert [s["infra_errors"] for s in detail["scores"]] and all(s["success_rate"] is None for s in detail["scores"])
    page = ok(http, f"/dashboard/runs/{ids['infra']}")
    assert "infra_error 1" in page
    tasks = ok(http, f"/dashboard/api/runs/{ids['infra']}/tasks?outcome=infra_error")
    assert tasks["page"]["total"] == 12
    ep = tasks["tasks"][0]["first_episode"]
    view = ok(http, f"/dashboard/api/episodes/{ep}")
    assert view["steps"] == [] and "connection refused" in view["episode"]["error"]
    assert "infra errors are stored without turns" in ok(http, f"/dashboard/episodes/{ep}")


def test_run_detail_histograms(seeded: tuple[httpx.Client, Store, dict[str, int]]) -> None:
    http, store, ids = seeded
    detail = ok(http, f"/dashboard/api/runs/{ids['a']}")
    exp = _expected(store, ids["a"])
    assert sum(b["count"] for b in detail["reward_histogram"]) == exp["scored"]
    assert sum(detail["turns_histogram"].values()) == exp["scored"]
    assert {k: v for k, v in detail["outcome_counts"].items()} == dict(exp["outcomes"])
    assert {(s["env"], s["split"]) for s in detail["scores"]} == {("webshop", s) for s in ("dev", "test", "train")}
    assert sum(s["episodes"] for s in detail["scores"]) == exp["scored"]


def test_task_filters_sort_and_pages(seeded: tuple[httpx.Client, Store, dict[str, int]]) -> None:
    http, store, ids = seeded
    run = ids["a"]
    eps = [e for e in store.episodes(run) if e["status"] == "done"]
    by_task: dict[str, list[dict[str, Any]]] = {}
    for e in eps:
        by_task.setdefault(e["task_id"], []).append(e)
    everything = ok(http, f"/dashboard/api/runs/{run}/tasks?per_page=500")
    assert everything["page"]["total"] == 60 and len(everything["tasks"]) == 60
    solved = {t for t, es in by_task.items() if any(e["success"] for e in es)}
    got = ok(http, f"/dashboard/api/runs/{run}/tasks?solved=yes&per_page=500")
    assert {t["task_id"] for t in got["tasks"]} == solved
    unsolved = ok(http, f"/dashboard/api/runs/{run}/tasks?solved=no&per_page=500")
    assert {t["task_id"] for t in unsolved["tasks"]} == set(by_task) - solved - {
        t for t, es in by_task.items() if all(e["outcome"] == "infra_error" for e in es)}
    trunc = ok(http, f"/dashboard/api/runs/{run}/tasks?outcome=truncated&split=dev&per_page=500")
    assert {t["task_id"] for t in trunc["tasks"]} == {
        t for t, es in by_task.items() if es[0]["split"] == "dev" and any(e["outcome"] == "truncated" for e in es)}
    q = ok(http, f"/dashboard/api/runs/{run}/tasks?q=0001")
    assert {t["task_id"] for t in q["tasks"]} == {t for t in by_task if "0001" in t}
    assert ok(http, f"/dashboard/api/runs/{run}/tasks?q=%25")["page"]["total"] == 0  # LIKE wildcards are literal
    desc = ok(http, f"/dashboard/api/runs/{run}/tasks?sort=mean_reward&order=desc&per_page=500")["tasks"]
    rewards = [t["mean_reward"] for t in desc if t["mean_reward"] is not None]
    assert rewards == sorted(rewards, reverse=True)
    row = next(t for t in everything["tasks"] if t["task_id"] == "webshop-00007")
    es = by_task["webshop-00007"]
    assert row["episodes"] == 2 and row["successes"] == sum(bool(e["success"]) for e in es)
    assert row["first_episode"] == min(e["id"] for e in es)
    p2 = ok(http, f"/dashboard/api/runs/{run}/tasks?per_page=25&page=3")
    assert p2["page"]["pages"] == 3 and [t["task_id"] for t in p2["tasks"]] == sorted(by_task)[50:]
    html = ok(http, f"/dashboard/runs/{run}?q=00012")
    assert "webshop-00012" in html and "webshop-00013" not in html


def test_episode_view_turns_and_neighbours(seeded: tuple[httpx.Client, Store, dict[str, int]]) -> None:
    http, store, ids = seeded
    eps = [e for e in store.episodes(ids["a"]) if e["task_id"] == "webshop-00005"]
    other = [e for run in ("b", "infra") for e in store.episodes(ids[run]) if e["task_id"] == "webshop-00005"]
    first = eps[0]
    view = ok(http, f"/dashboard/api/episodes/{first['id']}")
    turns = store.turns(first["id"])
    assert [m["idx"] for s in view["steps"] for m in s["messages"]] == [t["idx"] for t in turns]
    acted = [t for t in turns if t["action"] is not None]
    assert [s["action"] for s in view["steps"][1:]] == [t["action"] for t in acted][: len(view["steps"]) - 1]
    assert view["steps"][0]["observation"] == turns[1]["observation"]
    for step in view["steps"][1:]:
        if step["thought"]:
            assert step["thought"].startswith("step ") and "Action:" not in step["thought"]
    # neighbours: the task's done episodes in (run, sample) order: a s0, a s1, b s0, infra-only s0
    chain = [e["id"] for e in eps] + [e["id"] for e in other]
    assert view["position"] == 1 and view["task_episodes"] == len(chain) and view["prev"] is None
    assert view["next"]["id"] == chain[1]
    last = ok(http, f"/dashboard/api/episodes/{chain[-1]}")
    assert last["next"] is None and last["prev"]["id"] == chain[-2] and last["position"] == len(chain)
    html = ok(http, f"/dashboard/episodes/{chain[1]}")
    assert f'href="/dashboard/episodes/{chain[0]}"' in html and f'href="/dashboard/episodes/{chain[2]}"' in html


def test_trajectory_text_is_escaped(seeded: tuple[httpx.Client, Store, dict[str, int]]) -> None:
    http, store, ids = seeded
    ep = next(e for e in store.episodes(ids["a"]) if e["task_id"] == "webshop-00003")
    html = ok(http, f"/dashboard/episodes/{ep['id']}")
    assert "<script>window.__pwned" not in html and "<img src=x" not in html
    assert "&lt;script&gt;window.__pwned = 1&lt;/script&gt;&lt;img src=x onerror=alert(1)&gt;" in html
    assert ok(http, f"/dashboard/api/episodes/{ep['id']}")["steps"][0]["observation"].startswith(EVIL)


def test_compare_api(seeded: tuple[httpx.Client, Store, dict[str, int]]) -> None:
    http, store, ids = seeded
    data = ok(http, "/dashboard/api/compare")
    assert data["models"] == ["model-a", "model-b"] and data["envs"] == ["household", "webshop"]
    assert data["splits"] == ["dev", "test", "train"]
    cell = next(s for s in data["scores"] if s["model"] == "model-b" and s["env"] == "webshop")
    exp_b, exp_i = _expected(store, ids["b"]), _expected(store, ids["infra"])
    assert cell["runs"] == 2 and cell["scored"] == exp_b["scored"] + exp_i["scored"]
    assert cell["success_rate"] == pytest.approx(exp_b["successes"] / exp_b["scored"])
    assert cell["infra_errors"] == exp_b["outcomes"]["infra_error"] + 12
    curve = next(c for c in data["curves"] if c["model"] == "model-a" and c["env"] == "household")
    eps = [e for e in store.episodes(ids["c"]) if e["status"] == "done" and e["outcome"] != "infra_error"]
    assert curve["episodes"] == len(eps)
    assert curve["success"][-1] == pytest.approx(sum(bool(e["success"]) for e in eps) / len(eps))
    assert curve["progress"][-1] == pytest.approx(sum(e["progress"] for e in eps) / len(eps))
    t = 3
    assert curve["success"][t] == pytest.approx(sum(bool(e["success"]) and e["turns"] <= t for e in eps) / len(eps))
    assert all(a <= b + 1e-12 for a, b in zip(curve["progress"], curve["progress"][1:]))
    assert any(c["env"] == "(all envs)" and c["model"] == "model-a" for c in data["curves"])
    dev = ok(http, "/dashboard/api/compare?split=dev")
    assert dev["split"] == "dev"
    assert sum(s["scored"] for s in dev["scores"]) < sum(s["scored"] for s in data["scores"])


def test_live_api_follows_the_collection(seeded: tuple[httpx.Client, Store, dict[str, int]]) -> None:
    http, store, ids = seeded
    run = ids["live"]
    live = ok(http, f"/dashboard/api/runs/{run}/live")
    assert live["run"]["done"] == 10 and live["run"]["claimed"] == 4 and live["run"]["pending"] == 16
    assert list(live["workers"].values()) == [4] and live["run"]["state"] == "running"
    assert live["timeline"][-1][1] == 10 and len(live["recent"]) == 10
    # one more episode lands (as the collector writes it): the live document follows
    worker = worker_id()
    [claimed] = store.claim(run, worker, 1, lease_s=60)
    now = datetime.now(UTC)
    store.commit([EpisodeRecord(episode_id=claimed.id, outcome="success", attempt=1, reward=1.0, success=True, turns=1,
                                started_at=now, finished_at=now, duration_s=0.01,
                                messages=[TurnRecord(step=0, role="user", content="hi")])], worker)
    live = ok(http, f"/dashboard/api/runs/{run}/live")
    assert live["run"]["done"] == 11 and live["recent"][0]["id"] == claimed.id
    assert live["finished_last_minute"] >= 1


def test_empty_stores(tmp_path: Path) -> None:
    # a database the collector never wrote (only the hub's tables), then one with the tables and no run
    bare, empty = tmp_path / "bare.db", tmp_path / "empty.db"
    Store(str(empty)).close()
    for db in (bare, empty):
        with running_server(hub(db)) as url, httpx.Client(base_url=url, timeout=30) as http:
            for path in PAGES:
                assert http.get(path).status_code == 200, path
            assert "No runs in this store yet" in http.get("/dashboard").text
            assert http.get("/dashboard/api/runs").json()["runs"] == []
            assert http.get("/dashboard/api/compare").json()["scores"] == []
            assert http.get("/dashboard/runs/1").status_code == 404
            assert http.get("/dashboard/api/episodes/1").status_code == 404
    with sqlite3.connect(bare) as conn:  # the dashboard only read: no collector table was created
        tables = {name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert "episodes" not in tables and "runs" not in tables and any(t.startswith("hub_") for t in tables)


def test_api_is_in_openapi(seeded: tuple[httpx.Client, Store, dict[str, int]]) -> None:
    http, _, _ = seeded
    paths = ok(http, "/openapi.json")["paths"]
    api = {p for p in paths if p.startswith("/dashboard")}
    assert api == {"/dashboard/api/runs", "/dashboard/api/compare", "/dashboard/api/runs/{run_id}",
                   "/dashboard/api/runs/{run_id}/tasks", "/dashboard/api/runs/{run_id}/live",
                   "/dashboard/api/episodes/{episode_id}"}
    params = {p["name"] for p in paths["/dashboard/api/runs/{run_id}/tasks"]["get"]["parameters"]}
    assert {"split", "outcome", "solved", "q", "sort", "order", "page", "per_page"} <= params
    assert "/v1/envs" in paths  # the hub's own routes are still there


def test_hub_cli_mounts_the_dashboard(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import services.runner
    from cli.hub import hub as hub_command
    from services.ports import free_port

    seen: dict[str, Any] = {}
    monkeypatch.setattr(services.runner, "run_server", lambda app, host, port, **kw: seen.update(app=app))
    hub_command(store=str(tmp_path / "s.db"), token=TOKEN, port=free_port())
    assert {"/dashboard/api/runs", "/v1/envs"} <= set(seen["app"].openapi()["paths"])
    with TestClient(seen["app"]) as client:
        r = client.get("/dashboard")
        assert r.status_code == 200 and "No runs in this store yet" in r.text


def test_store_written_after_the_hub_started(tmp_path: Path) -> None:
    db = tmp_path / "later.db"
    with running_server(hub(db)) as url, httpx.Client(base_url=url, timeout=30) as http:
        assert http.get("/dashboard/api/runs").json()["runs"] == []
        store = Store(str(db))  # the collector arrives: migrations, then a run
        seed_run(store, RunSpec("late", "webshop", "model-a", tasks_for("webshop", 5), seed=9))
        store.close()
        assert [r["name"] for r in http.get("/dashboard/api/runs").json()["runs"]] == ["late"]
        assert http.get("/dashboard/runs/1").status_code == 200
