"""Per-client session quotas: one client can no longer take every slot of an env service (issue 20).

Before, one client opened all 4,096 sessions in about a second and everyone else got 429 until the
TTL reaped them. Now a client (peer address + `X-Trajgym-Client` id) holds at most
`max_sessions_per_client`, one address at most `max_sessions_per_address` whatever ids it sends;
past either it gets 429 with Retry-After and a message, and a client from another address is served.
"""

from __future__ import annotations

import asyncio
import time

import aiohttp
import httpx
import pytest

from clients.env_client import AsyncEnvClient, process_client_id
from collector.config import JobConfig
from services.app import ServiceSettings, create_app
from services.sessions import ClientKey, SessionManager
from tests.support.counter_env import CounterEnv
from tests.support.server import running_server
from wire.env_api import CLIENT_HEADER
from wire.errors import QuotaExceeded, ServerFull

OTHER_ADDRESS = "127.0.0.2"  # all of 127.0.0.0/8 is loopback on Linux: a second client machine


def _client(url: str, address: str | None = None, client_id: str | None = None) -> httpx.Client:
    transport = httpx.HTTPTransport(local_address=address) if address else None
    return httpx.Client(base_url=url, transport=transport, timeout=30,
                        headers={CLIENT_HEADER: client_id} if client_id else None)


def test_defaults_are_a_share_of_the_table_and_fit_the_collector() -> None:
    s = ServiceSettings()
    assert (s.max_sessions, s.max_sessions_per_client, s.max_sessions_per_address) == (4096, 1024, 2048)
    small = ServiceSettings(max_sessions=3)
    assert small.max_sessions_per_client == small.max_sessions_per_address == 3  # a small table is not split
    assert ServiceSettings(max_sessions=200).max_sessions_per_client == 64
    # The collector holds one session per episode in flight: its default fits many times over, and each
    # collector process sends its own id, so several on one machine share only the per-address quota.
    assert JobConfig.model_fields["concurrency"].default * 16 <= s.max_sessions_per_client
    assert process_client_id() == process_client_id() and len(process_client_id()) <= 100


def test_one_client_fills_its_quota_then_429_while_another_address_is_served() -> None:
    settings = ServiceSettings(max_sessions=40, max_sessions_per_client=10, max_sessions_per_address=20, session_ttl=300)
    with running_server(create_app(CounterEnv, settings=settings)) as url, _client(url) as attacker, \
            _client(url, OTHER_ADDRESS) as victim:
        opened = [attacker.post("/v1/sessions", json={}) for _ in range(10)]
        assert [r.status_code for r in opened] == [201] * 10
        r = attacker.post("/v1/sessions", json={})
        assert r.status_code == 429 and 1 <= int(r.headers["Retry-After"]) <= 301
        assert "quota" in r.json()["detail"] and "--max-sessions-per-client 10" in r.json()["detail"]
        assert attacker.post("/create").status_code == 429  # the AgentGym surface counts against the same quota
        assert victim.post("/v1/sessions", json={}).status_code == 201
        assert victim.get("/healthz").json()["sessions"] == 11
        # Closing one frees a slot of the same client.
        attacker.delete(f"/v1/sessions/{opened[0].json()['session_id']}")
        assert attacker.post("/v1/sessions", json={}).status_code == 201


def test_rotating_client_ids_buys_only_the_address_quota() -> None:
    settings = ServiceSettings(max_sessions=40, max_sessions_per_client=5, max_sessions_per_address=12, session_ttl=300)
    with running_server(create_app(CounterEnv, settings=settings)) as url, _client(url) as attacker, \
            _client(url, OTHER_ADDRESS, "victim") as victim:
        statuses = [attacker.post("/v1/sessions", json={}, headers={CLIENT_HEADER: f"id-{i}"}).status_code for i in range(20)]
        assert statuses == [201] * 12 + [429] * 8
        r = attacker.post("/v1/sessions", json={}, headers={CLIENT_HEADER: "fresh"})
        assert r.status_code == 429 and "--max-sessions-per-address 12" in r.json()["detail"] and "Retry-After" in r.headers
        assert [victim.post("/v1/sessions", json={}).status_code for _ in range(5)] == [201] * 5


@pytest.mark.parametrize("value", ["has space", "x" * 101, "semi;colon", "é"])
def test_a_malformed_client_id_is_422(value: str) -> None:
    with running_server(create_app(CounterEnv)) as url, httpx.Client(base_url=url) as http:
        r = http.post("/v1/sessions", json={}, headers={CLIENT_HEADER: value.encode()})
        assert r.status_code == 422 and "X-Trajgym-Client" in r.text


async def test_flood_from_one_address_at_default_settings_leaves_room_for_others() -> None:
    """The reproduction: as many sessions as fast as possible from one client (no id), default limits."""
    with running_server(create_app(CounterEnv, settings=ServiceSettings(session_ttl=600))) as url:
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=32)) as http:
            sem = asyncio.Semaphore(32)

            async def open_one() -> int:
                async with sem, http.post(url + "/v1/sessions", json={}) as resp:
                    await resp.read()
                    return resp.status

            started = time.monotonic()
            statuses = await asyncio.gather(*(open_one() for _ in range(1100)))
            flood_s = time.monotonic() - started
        assert statuses.count(201) == 1024 and statuses.count(429) == 76, flood_s
        async with AsyncEnvClient(url, retries=0) as same_machine:  # its own id (the process's), same address
            began = time.monotonic()
            assert (await same_machine.create(task_id="counter-1")).task_id == "counter-1"
            assert time.monotonic() - began < 10
        other_machine = aiohttp.TCPConnector(local_addr=(OTHER_ADDRESS, 0))
        async with aiohttp.ClientSession(connector=other_machine) as http:
            began = time.monotonic()
            async with http.post(url + "/v1/sessions", json={"task_id": "counter-2"}) as resp:
                assert resp.status == 201
            assert time.monotonic() - began < 10
            async with http.get(url + "/healthz") as resp:
                assert (await resp.json())["sessions"] == 1026


async def test_env_clients_with_their_own_ids_hold_separate_quotas() -> None:
    settings = ServiceSettings(max_sessions=100, max_sessions_per_client=3, max_sessions_per_address=50)
    with running_server(create_app(CounterEnv, settings=settings)) as url:
        async with AsyncEnvClient(url, client_id="collector-a", retries=0) as a, \
                AsyncEnvClient(url, client_id="collector-b", retries=0) as b:
            for _ in range(3):
                await a.create()
                await b.create()
            with pytest.raises(ServerFull, match="quota") as err:
                await a.create()
            assert err.value.retry_after is not None and err.value.retry_after >= 1


def test_session_manager_counts_reservations_releases_reaping_and_closing() -> None:
    closed: list[str] = []
    manager = SessionManager(10, ttl_seconds=0.05, on_close=lambda s, reason: closed.append(reason), per_client=2, per_address=3)
    a, a2, b = ClientKey("10.0.0.1", "a"), ClientKey("10.0.0.1", "a2"), ClientKey("10.0.0.2")
    manager.reserve(a)
    manager.release(a)  # a failed reset gives its slot back
    assert manager.held(a) == 0
    for _ in range(2):
        manager.reserve(a)
        manager.add(object(), client=a)  # type: ignore[arg-type]
    with pytest.raises(QuotaExceeded, match="client a@10.0.0.1"):
        manager.reserve(a)
    manager.reserve(a2)
    with pytest.raises(QuotaExceeded, match="address 10.0.0.1"):
        manager.reserve(ClientKey("10.0.0.1", "a3"))
    manager.reserve(b)  # another address
    time.sleep(0.1)
    assert manager.reap() == 2 and closed == ["expired", "expired"]
    assert manager.held(a) == 0 and manager.held(a2) == 1 and manager.held(b) == 1  # reservations are not reaped
    manager.add(object(), client=b)  # type: ignore[arg-type]
    manager.close_all()
    assert manager.held(b) == 0
