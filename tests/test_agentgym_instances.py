"""The lifetime policy of AgentGym instances (services.agentgym.instances) and the generic surface's indices.

AgentGym instances outlive the ordinary session TTL (their own, long TTL), are capped, and
at the cap the least recently used one idle past the ordinary TTL makes room; an instance in
use is never closed, and a full pool answers 429 with Retry-After. Uses the counter test env.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest

from services.agentgym.instances import AgentGymSettings
from services.app import ServiceSettings, create_app
from services.sessions import SessionManager
from tests.support.counter_env import CounterEnv
from tests.support.server import running_server

ORDINARY_TTL = 0.4


def _create(http: httpx.Client) -> int:
    r = http.post("/create")
    assert r.status_code == 200, r.text
    return int(r.json()["id"])


def _alive(http: httpx.Client, index: int) -> bool:
    return http.get("/observation", params={"id": index}).status_code == 200


@pytest.fixture
def pool_url(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setenv("TRAJGYM_AGENTGYM_MAX_INSTANCES", "2")
    monkeypatch.delenv("TRAJGYM_AGENTGYM_TTL", raising=False)
    settings = ServiceSettings(max_sessions=50, session_ttl=ORDINARY_TTL, reap_interval=0.05)
    with running_server(create_app(CounterEnv, settings=settings)) as url:
        yield url


def test_agentgym_instances_outlive_the_session_ttl(pool_url: str) -> None:
    with httpx.Client(base_url=pool_url) as http:
        index = _create(http)
        sid = http.post("/v1/sessions", json={}).json()["session_id"]
        time.sleep(ORDINARY_TTL * 2.5)  # several reaper passes
        assert http.get(f"/v1/sessions/{sid}").status_code == 404  # the v1 session was reaped
        assert _alive(http, index)  # the AgentGym one was not


def test_the_cap_evicts_the_least_recently_used_idle_instance(pool_url: str) -> None:
    with httpx.Client(base_url=pool_url) as http:
        first, second = _create(http), _create(http)
        full = http.post("/create")
        assert full.status_code == 429 and int(full.headers["Retry-After"]) >= 1  # both in use: nothing is closed
        assert "AgentGym instance limit (2)" in full.json()["detail"]
        assert _alive(http, first) and _alive(http, second)
        time.sleep(ORDINARY_TTL * 1.5)
        assert _alive(http, second)  # `second` is in use again; `first` stays idle
        third = _create(http)
        assert not _alive(http, first) and _alive(http, second) and _alive(http, third)


def test_own_ttl_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRAJGYM_AGENTGYM_TTL", "0.3")
    settings = ServiceSettings(max_sessions=10, session_ttl=60, reap_interval=0.05)
    with running_server(create_app(CounterEnv, settings=settings)) as url, httpx.Client(base_url=url) as http:
        index = _create(http)
        time.sleep(0.8)
        assert not _alive(http, index)


def test_settings_from_environ() -> None:
    assert AgentGymSettings.from_environ({}) == AgentGymSettings(ttl=86_400.0, max_instances=None)
    assert AgentGymSettings.from_environ({"TRAJGYM_AGENTGYM_TTL": "60", "TRAJGYM_AGENTGYM_MAX_INSTANCES": " 8 "}) == \
        AgentGymSettings(ttl=60.0, max_instances=8)
    for bad in ({"TRAJGYM_AGENTGYM_TTL": "soon"}, {"TRAJGYM_AGENTGYM_MAX_INSTANCES": "0"}):
        with pytest.raises(ValueError, match="TRAJGYM_AGENTGYM"):
            AgentGymSettings.from_environ(bad)


def test_session_ttl_override_in_the_table() -> None:
    table = SessionManager(max_sessions=10, ttl_seconds=0.05)
    table.reserve()
    ordinary = table.add(CounterEnv(CounterEnv.load()))
    table.reserve()
    agentgym = table.add(CounterEnv(CounterEnv.load()), agentgym=True)
    agentgym.ttl = 60.0
    time.sleep(0.1)
    assert table.reap() == 1
    assert table.agentgym_sessions() == [agentgym] and not table.was_closed(agentgym.id) and table.was_closed(ordinary.id)
    assert agentgym.agentgym_index is not None and 0 < agentgym.agentgym_index < 2**53


def test_generic_reset_out_of_range_is_404_not_a_wrap(counter_url: str) -> None:
    with httpx.Client(base_url=counter_url) as http:
        index = _create(http)
        n = http.get("/v1/tasks").json()["total"]
        r = http.post("/reset", json={"id": index, "game": n})
        assert r.status_code == 404 and f"0–{n - 1}" in r.json()["detail"]
        assert http.post("/reset", json={"id": index, "game": n - 1}).status_code == 200
