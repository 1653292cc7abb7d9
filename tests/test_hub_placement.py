"""Placement through the hub: least-loaded spreading over 3 replicas, sticky episodes, dead replicas, join."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from clients.env_client import AsyncEnvClient
from wire.errors import EnvUnavailable, SessionNotFound
from clients.hub_client import (
    EnvNotRegistered,
    Lease,
    NoHealthyReplica,
    Placement,
    RegistryClient,
    RegistryError,
)
from services.app import ServiceSettings, create_app
from services.hub.app import HubSettings, create_hub_app
from tests.support.counter_env import CounterEnv
from tests.support.server import running_server

TOKEN = "placement-token"


@pytest.fixture(scope="module")
def replicas() -> Iterator[list[str]]:
    with contextlib.ExitStack() as stack:
        yield [stack.enter_context(running_server(create_app(CounterEnv, settings=ServiceSettings(max_sessions=1000))))
               for _ in range(3)]


@pytest.fixture
def hub_url(tmp_path: Path) -> Iterator[str]:
    app = create_hub_app(f"sqlite:///{tmp_path / 'hub.db'}", TOKEN, health_checks=False,
                         settings=HubSettings(health_timeout=1.0, failures_before_down=1))
    with running_server(app) as url:
        yield url


@pytest.fixture
async def registry(hub_url: str) -> AsyncIterator[RegistryClient]:
    async with RegistryClient(hub_url, token=TOKEN) as client:
        yield client


async def open_sessions(urls: list[str]) -> dict[str, int]:
    counts = {}
    for url in urls:
        async with AsyncEnvClient(url) as c:
            counts[url] = (await c.health())["sessions"]
    return counts


async def play(client: AsyncEnvClient, session_id: str) -> bool:
    while True:
        result = await client.step(session_id, await client.expert_action(session_id))
        if result.done:
            return bool(result.info["success"])


async def test_sessions_spread_over_three_replicas_and_episodes_stay_put(registry: RegistryClient, replicas: list[str]) -> None:
    await registry.register(replicas)
    placement = Placement(registry, "counter")
    leases: list[tuple[Lease, str]] = []
    try:
        async def start(i: int) -> tuple[Lease, str]:
            lease = await placement.acquire()
            created = await lease.client.create(task_id=f"counter-{i % 30}")
            return lease, created.session_id

        leases = list(await asyncio.gather(*(start(i) for i in range(30))))
        assert await open_sessions(replicas) == {url: 10 for url in replicas}
        assert placement.leases == {url: 10 for url in replicas}

        async def finish(lease: Lease, session_id: str) -> bool:
            for other in (u for u in replicas if u != lease.url):  # the other replicas do not know the session
                async with AsyncEnvClient(other) as c:
                    with pytest.raises(SessionNotFound):
                        await c.state(session_id)
            won = await play(lease.client, session_id)  # every step on the lease's replica
            assert lease.client.base_url == lease.url
            return won

        assert all(await asyncio.gather(*(finish(lease, sid) for lease, sid in leases)))
    finally:
        for lease, sid in leases:
            await lease.client.close(sid)
            lease.release()
        await placement.aclose()
    assert placement.leases == {url: 0 for url in replicas}
    assert await open_sessions(replicas) == {url: 0 for url in replicas}


async def test_placement_follows_live_load_from_other_clients(registry: RegistryClient, replicas: list[str]) -> None:
    await registry.register(replicas)
    busy = replicas[0]
    async with AsyncEnvClient(busy) as other_client:
        foreign = [(await other_client.create(task_id="counter-1")).session_id for _ in range(6)]
        placement = Placement(registry, "counter")
        try:
            held = [await placement.acquire() for _ in range(6)]
            assert sorted(lease.url for lease in held) == sorted([replicas[1]] * 3 + [replicas[2]] * 3)
            held += [await placement.acquire() for _ in range(6)]
            assert placement.leases == {busy: 0, replicas[1]: 6, replicas[2]: 6}
            # now all three carry 6 sessions: the ties go round-robin
            held += [await placement.acquire() for _ in range(3)]
            assert placement.leases == {busy: 1, replicas[1]: 7, replicas[2]: 7}
            for lease in held:
                lease.release()
                lease.release()  # idempotent
            assert placement.leases == {url: 0 for url in replicas}
        finally:
            await placement.aclose()
            for sid in foreign:
                await other_client.close(sid)


async def test_a_dead_replica_fails_its_episode_and_is_avoided(registry: RegistryClient, replicas: list[str]) -> None:
    with contextlib.ExitStack() as doomed_server:
        doomed = doomed_server.enter_context(running_server(create_app(CounterEnv)))
        await registry.register([replicas[0], doomed])
        placement = Placement(registry, "counter", cooldown=60.0, wait=0.3)
        try:
            with pytest.raises(EnvUnavailable):
                async with placement.lease(exclude=[replicas[0]]) as lease:
                    assert lease.url == doomed
                    created = await lease.client.create(task_id="counter-3")
                    await lease.client.step(created.session_id, "add[1]")
                    await asyncio.get_running_loop().run_in_executor(None, doomed_server.close)  # the replica dies
                    await lease.client.step(created.session_id, "add[1]")
            assert lease.released
            # the hub still lists it as up, but this placement cools it down: the retry goes elsewhere
            assert [r.status.value for r in (await registry.get_env("counter")).replicas] == ["up", "up"]
            for _ in range(4):
                async with placement.lease() as retry:
                    assert retry.url == replicas[0]
            with pytest.raises(NoHealthyReplica):
                await placement.acquire(exclude=[replicas[0]])
        finally:
            await placement.aclose()
    await registry.check_now()
    assert [r.status.value for r in (await registry.get_env("counter")).replicas] == ["up", "down"]
    fresh = Placement(registry, "counter", wait=0.3)
    try:
        assert (await fresh.acquire()).url == replicas[0]
        with pytest.raises(NoHealthyReplica):
            await fresh.acquire(exclude=[replicas[0]])
    finally:
        await fresh.aclose()


async def test_unknown_env_and_refused_writes(registry: RegistryClient, hub_url: str, replicas: list[str]) -> None:
    with pytest.raises(EnvNotRegistered):
        await registry.get_env("nope")
    placement = Placement(registry, "nope")
    with pytest.raises(EnvNotRegistered):
        await placement.acquire()
    await placement.aclose()
    async with RegistryClient(hub_url) as anonymous, RegistryClient(hub_url, token="wrong") as wrong:
        with pytest.raises(RegistryError) as no_token:
            await anonymous.register(replicas[:1])
        with pytest.raises(RegistryError) as bad_token:
            await wrong.register(replicas[:1])
        assert (no_token.value.status, bad_token.value.status) == (401, 403)
        assert await anonymous.list_envs() == []


async def test_join_is_idempotent_and_adds_replicas(registry: RegistryClient, replicas: list[str]) -> None:
    first = await registry.join(replicas[0])
    again = await registry.join(replicas[0] + "/")
    assert [r.url for r in first.replicas] == [r.url for r in again.replicas] == [replicas[0]]
    record = await registry.join(replicas[1])
    assert [r.url for r in record.replicas] == replicas[:2]
    assert [r.url for r in await registry.healthy_replicas("counter")] == replicas[:2]
    assert await registry.remove_replica_url("counter", replicas[0]) is True
    assert await registry.remove_replica_url("counter", replicas[0]) is False
    assert [r.url for r in (await registry.get_env("counter")).replicas] == [replicas[1]]
    await registry.unregister("counter")
    assert await registry.list_envs() == []


async def test_hub_away_keeps_the_last_replica_list(tmp_path: Path, replicas: list[str]) -> None:
    app = create_hub_app(f"sqlite:///{tmp_path / 'hub.db'}", TOKEN, health_checks=False)
    with running_server(app) as url:
        async with RegistryClient(url, token=TOKEN) as reg:
            await reg.register(replicas[:2])
            placement = Placement(reg, "counter", refresh=0.0)
            assert (await placement.acquire()).url in replicas[:2]
    # hub stopped: placement keeps working from its last list
    lease = await placement.acquire()
    assert lease.url in replicas[:2]
    assert (await placement.info()).name == "counter"
    await placement.aclose()
    await reg.aclose()


async def test_background_probes_follow_load_changes(registry: RegistryClient, replicas: list[str]) -> None:
    await registry.register(replicas[:2])
    placement = Placement(registry, "counter", probe_ttl=0.05)
    async with AsyncEnvClient(replicas[0]) as other:
        foreign: list[str] = []
        try:
            (await placement.acquire()).release()  # first probes: both replicas idle
            foreign = [(await other.create(task_id="counter-2")).session_id for _ in range(4)]
            deadline = asyncio.get_running_loop().time() + 20
            while placement._replicas[replicas[0]].probed_sessions != 4:  # a later acquire renews the probes
                assert asyncio.get_running_loop().time() < deadline
                (await placement.acquire()).release()
                await asyncio.sleep(0.05)
            held = [await placement.acquire() for _ in range(4)]
            assert [lease.url for lease in held] == [replicas[1]] * 4
            for lease in held:
                lease.release()
        finally:
            await placement.aclose()
            for sid in foreign:
                await other.close(sid)
