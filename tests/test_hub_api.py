"""Hub API over HTTP: auth (401/403), register/list/describe/unregister, 409, 422, replicas, health, restart."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import httpx
import pytest

from envs.types import ToolParam, ToolSpec
from services.app import create_app
from services.hub.app import HubSettings, create_hub_app
from tests.support.counter_env import CounterEnv
from tests.support.server import free_port, running_server

TOKEN = "s3cret-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


class OtherEnv(CounterEnv):
    name = "other"
    tools: ClassVar[list[ToolSpec]] = [ToolSpec(name="finish", description="Finish.", params=[ToolParam(name="answer")], text_template="finish[{answer}]")]


def hub_app(db: Path, **kw: object):  # type: ignore[no-untyped-def]
    settings = HubSettings(health_timeout=1.0, failures_before_down=1, health_interval=float(kw.pop("interval", 5.0)))  # type: ignore[arg-type]
    return create_hub_app(f"sqlite:///{db}", TOKEN, settings=settings, health_checks=bool(kw.pop("checks", False)))


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[httpx.Client]:
    with running_server(hub_app(tmp_path / "hub.db")) as url, httpx.Client(base_url=url, timeout=30) as http:
        yield http


def dead_url() -> str:
    return f"http://127.0.0.1:{free_port()}"


def test_write_routes_need_the_token(hub: httpx.Client, counter_url: str) -> None:
    body = {"urls": [counter_url]}
    r = hub.post("/v1/envs", json=body)
    assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
    assert hub.post("/v1/envs", json=body, headers={"Authorization": "Bearer nope"}).status_code == 403
    assert hub.post("/v1/envs", json=body, headers={"Authorization": f"Basic {TOKEN}"}).status_code == 401
    assert hub.get("/v1/envs").json() == {"envs": []}  # nothing was registered by the refused calls

    r = hub.post("/v1/envs", json=body, headers=AUTH)
    assert r.status_code == 201, r.text
    rec = r.json()
    assert rec["name"] == "counter" and rec["env_name"] == "counter" and rec["version"] == CounterEnv.version
    assert [t["function"]["name"] for t in rec["info"]["tools"]] == ["add", "finish"]
    assert rec["info"]["task_counts"] == {"train": 15, "dev": 5, "test": 10}
    [replica] = rec["replicas"]
    assert replica["url"] == counter_url and replica["status"] == "up" and replica["verified"] is True
    assert replica["max_sessions"] == 10_000

    # reads are open
    assert [e["name"] for e in hub.get("/v1/envs").json()["envs"]] == ["counter"]
    assert hub.get("/v1/envs/counter").json()["replicas"][0]["url"] == counter_url
    assert hub.get("/v1/envs/nope").status_code == 404

    # unregister: token required, then gone
    assert hub.delete("/v1/envs/counter").status_code == 401
    assert hub.delete("/v1/envs/counter", headers={"Authorization": "Bearer x"}).status_code == 403
    assert hub.get("/v1/envs/counter").status_code == 200
    assert hub.delete("/v1/envs/counter", headers=AUTH).status_code == 200
    assert hub.get("/v1/envs/counter").status_code == 404
    assert hub.delete("/v1/envs/counter", headers=AUTH).status_code == 404
    assert hub.get("/v1/envs").json() == {"envs": []}


def test_duplicate_name_is_409_and_an_alias_is_allowed(hub: httpx.Client, counter_url: str) -> None:
    assert hub.post("/v1/envs", json={"urls": [counter_url]}, headers=AUTH).status_code == 201
    r = hub.post("/v1/envs", json={"urls": [counter_url]}, headers=AUTH)
    assert r.status_code == 409 and "already registered" in r.json()["detail"]
    r = hub.post("/v1/envs", json={"urls": [counter_url], "name": "counter-b", "meta": {"owner": "me"}}, headers=AUTH)
    assert r.status_code == 201 and r.json()["env_name"] == "counter" and r.json()["meta"] == {"owner": "me"}
    assert sorted(e["name"] for e in hub.get("/v1/envs").json()["envs"]) == ["counter", "counter-b"]


@pytest.mark.parametrize("url", ["ftp://127.0.0.1:1", "not a url", "http://", "http://u:p@127.0.0.1:9", "http://127.0.0.1:9/?q=1",
                                 "http://127.0.0.1:9/#x", "http://127.0.0.1:99999", "", 42])
def test_bad_urls_are_422(hub: httpx.Client, url: object) -> None:
    r = hub.post("/v1/envs", json={"urls": [url]}, headers=AUTH)
    assert r.status_code == 422, r.text
    assert hub.get("/v1/envs").json() == {"envs": []}


def test_unusable_registrations_are_422(hub: httpx.Client, counter_url: str) -> None:
    r = hub.post("/v1/envs", json={"urls": [dead_url()]}, headers=AUTH)
    assert r.status_code == 422 and "no replica answered" in r.json()["detail"]
    r = hub.post("/v1/envs", json={"urls": [str(hub.base_url).rstrip("/")]}, headers=AUTH)  # the hub is no env
    assert r.status_code == 422
    assert hub.post("/v1/envs", json={"urls": []}, headers=AUTH).status_code == 422
    assert hub.post("/v1/envs", json={"urls": [counter_url, counter_url + "/"]}, headers=AUTH).status_code == 422
    assert hub.post("/v1/envs", json={"urls": [counter_url], "name": "bad name!"}, headers=AUTH).status_code == 422
    with running_server(create_app(OtherEnv)) as other:
        r = hub.post("/v1/envs", json={"urls": [counter_url, other]}, headers=AUTH)
        assert r.status_code == 422 and "different envs" in r.json()["detail"]
    assert hub.get("/v1/envs").json() == {"envs": []}


def test_replicas_add_and_remove(hub: httpx.Client, counter_url: str) -> None:
    dead = dead_url()
    rec = hub.post("/v1/envs", json={"urls": [counter_url, dead]}, headers=AUTH).json()
    assert [(r["url"], r["status"]) for r in rec["replicas"]] == [(counter_url, "up"), (dead, "down")]
    assert rec["replicas"][1]["last_error"]

    with running_server(create_app(CounterEnv)) as second, running_server(create_app(OtherEnv)) as other:
        assert hub.post("/v1/envs/counter/replicas", json={"url": second}).status_code == 401
        r = hub.post("/v1/envs/counter/replicas", json={"url": second}, headers=AUTH)
        assert r.status_code == 201 and r.json()["status"] == "up"
        assert hub.post("/v1/envs/counter/replicas", json={"url": second + "/"}, headers=AUTH).status_code == 409
        r = hub.post("/v1/envs/counter/replicas", json={"url": other}, headers=AUTH)
        assert r.status_code == 409 and "serves other" in r.json()["detail"]
        assert hub.post("/v1/envs/counter/replicas", json={"url": "gopher://x"}, headers=AUTH).status_code == 422
        assert hub.post("/v1/envs/nope/replicas", json={"url": second}, headers=AUTH).status_code == 404
        replicas = hub.get("/v1/envs/counter").json()["replicas"]
        assert [r["url"] for r in replicas] == [counter_url, dead, second]

    dead_id = replicas[1]["id"]
    assert hub.delete(f"/v1/envs/counter/replicas/{dead_id}").status_code == 401
    assert hub.delete(f"/v1/envs/counter/replicas/{dead_id}", headers=AUTH).status_code == 200
    assert hub.delete(f"/v1/envs/counter/replicas/{dead_id}", headers=AUTH).status_code == 404
    assert [r["url"] for r in hub.get("/v1/envs/counter").json()["replicas"]] == [counter_url, second]


def status_of(hub: httpx.Client, name: str) -> list[str]:
    return [r["status"] for r in hub.get(f"/v1/envs/{name}").json()["replicas"]]


def test_unreachable_replica_is_marked_down_and_back_up(hub: httpx.Client, counter_url: str) -> None:
    port = free_port()
    with running_server(create_app(CounterEnv), port=port) as flaky:
        assert hub.post("/v1/envs", json={"urls": [counter_url, flaky]}, headers=AUTH).status_code == 201
        assert hub.post("/v1/health/check").status_code == 401
        assert [r["status"] for r in hub.post("/v1/health/check", headers=AUTH).json()["envs"][0]["replicas"]] == ["up", "up"]
    hub.post("/v1/health/check", headers=AUTH)
    replicas = hub.get("/v1/envs/counter").json()["replicas"]
    assert [r["status"] for r in replicas] == ["up", "down"]
    assert replicas[1]["failures"] == 1 and replicas[1]["last_error"]
    with running_server(create_app(CounterEnv), port=port):
        hub.post("/v1/health/check", headers=AUTH)
        assert status_of(hub, "counter") == ["up", "up"]


def test_a_replica_replaced_by_another_env_goes_down(hub: httpx.Client, counter_url: str) -> None:
    port = free_port()
    with running_server(create_app(CounterEnv), port=port) as url:
        assert hub.post("/v1/envs", json={"urls": [url]}, headers=AUTH).status_code == 201
    hub.post("/v1/health/check", headers=AUTH)  # down (unreachable): it must be re-verified when it answers again
    with running_server(create_app(OtherEnv), port=port):
        hub.post("/v1/health/check", headers=AUTH)
        replica = hub.get("/v1/envs/counter").json()["replicas"][0]
        assert replica["status"] == "down" and "serves other" in replica["last_error"] and not replica["verified"]


def test_background_health_checks(tmp_path: Path, counter_url: str) -> None:
    import time

    app = hub_app(tmp_path / "hub.db", checks=True, interval=0.1)
    with running_server(app) as url, httpx.Client(base_url=url, timeout=30) as hub:
        with running_server(create_app(CounterEnv)) as flaky:
            assert hub.post("/v1/envs", json={"urls": [counter_url, flaky]}, headers=AUTH).status_code == 201
        deadline = time.monotonic() + 20
        while status_of(hub, "counter") != ["up", "down"]:
            assert time.monotonic() < deadline, hub.get("/v1/envs/counter").json()
            time.sleep(0.05)
        assert app.state.hub.checker.rounds >= 1


def test_hub_restart_keeps_registrations(tmp_path: Path, counter_url: str) -> None:
    db = tmp_path / "hub.db"
    with running_server(hub_app(db)) as url, httpx.Client(base_url=url, timeout=30) as hub:
        assert hub.post("/v1/envs", json={"urls": [counter_url, dead_url()], "meta": {"k": 1}}, headers=AUTH).status_code == 201
        assert hub.post("/v1/envs", json={"urls": [counter_url], "name": "alias"}, headers=AUTH).status_code == 201
        before = hub.get("/v1/envs").json()
    with running_server(hub_app(db)) as url, httpx.Client(base_url=url, timeout=30) as hub:
        # the registrations persist; the replicas' health does not (nothing is up before this hub checked it)
        assert without_health(hub.get("/v1/envs").json()) == without_health(before)
        assert {r["status"] for e in hub.get("/v1/envs").json()["envs"] for r in e["replicas"]} == {"unknown"}
        assert hub.post("/v1/envs", json={"urls": [counter_url]}, headers=AUTH).status_code == 409
        assert hub.get("/readyz").json()["status"] == "ready"
        hub.post("/v1/health/check", headers=AUTH)
        assert status_of(hub, "counter") == ["up", "down"] and status_of(hub, "alias") == ["up"]


def without_health(listing: dict) -> dict:  # type: ignore[type-arg]
    health = {"status", "verified", "sessions", "last_checked_at", "last_up_at", "failures", "last_error", "max_sessions"}
    return {"envs": [{**e, "replicas": [{k: v for k, v in r.items() if k not in health} for r in e["replicas"]]}
                     for e in listing["envs"]]}


def test_create_hub_app_needs_a_token_and_accepts_routers(tmp_path: Path) -> None:
    from fastapi import APIRouter

    with pytest.raises(ValueError):
        create_hub_app(f"sqlite:///{tmp_path / 'x.db'}", "")
    extra = APIRouter()

    @extra.get("/dashboard/ping")
    async def ping() -> dict[str, str]:
        return {"pong": "yes"}

    app = create_hub_app(f"sqlite:///{tmp_path / 'x.db'}", TOKEN, extra_routers=[extra], health_checks=False)
    with running_server(app) as url:
        assert httpx.get(url + "/dashboard/ping").json() == {"pong": "yes"}


PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def _postgres_available() -> bool:
    from sqlalchemy import create_engine, text
    from sqlalchemy.exc import SQLAlchemyError

    try:
        engine = create_engine(PG_URL, connect_args={"connect_timeout": 2})
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        engine.dispose()
        return True
    except SQLAlchemyError:
        return False


@pytest.mark.postgres
def test_registrations_persist_in_postgres(counter_url: str) -> None:
    import uuid

    if not _postgres_available():
        pytest.skip("no PostgreSQL at 127.0.0.1:5432 (database test)")
    name = f"counter-{uuid.uuid4().hex[:12]}"
    settings = HubSettings(health_timeout=1.0, failures_before_down=1)
    with running_server(create_hub_app(PG_URL, TOKEN, settings=settings, health_checks=False)) as url, \
            httpx.Client(base_url=url, timeout=30) as hub:
        r = hub.post("/v1/envs", json={"urls": [counter_url, dead_url()], "name": name}, headers=AUTH)
        assert r.status_code == 201, r.text
        assert hub.post("/v1/envs", json={"urls": [counter_url], "name": name}, headers=AUTH).status_code == 409
        before = hub.get(f"/v1/envs/{name}").json()
    try:
        with running_server(create_hub_app(PG_URL, TOKEN, settings=settings, health_checks=False)) as url, \
                httpx.Client(base_url=url, timeout=30) as hub:
            assert without_health({"envs": [hub.get(f"/v1/envs/{name}").json()]}) == without_health({"envs": [before]})
            hub.post("/v1/health/check", headers=AUTH)
            assert status_of(hub, name) == ["up", "down"]
            assert hub.delete(f"/v1/envs/{name}", headers=AUTH).status_code == 200
            assert hub.get(f"/v1/envs/{name}").status_code == 404
    finally:
        from services.hub.store import HubStore

        store = HubStore(PG_URL)
        try:
            store.delete_env(name)
        except LookupError:
            pass
        store.dispose()
