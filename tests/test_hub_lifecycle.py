"""Replica lifecycle in the hub: nothing handed out before this hub saw it healthy, down then removed after a
grace period, a restarted service replacing its own entry, the collector treating a dead replica as a
placement miss, and env services re-registering with a hub that restarted (same store, or an empty one)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from clients.hub_client import NoHealthyReplica, Placement, RegistryClient, RegistryError
from collector.collect import Collector
from collector.config import JobConfig, Policy
from services.app import create_app
from services.hub.app import HubSettings, create_hub_app
from tests.support.counter_env import CounterEnv
from tests.support.server import free_port, running_server
from tests.test_hub_processes import TOKEN, spawn, wait_for  # noqa: F401  (spawn is a fixture)

AUTH = {"Authorization": f"Bearer {TOKEN}"}


def hub_app(db: Path, **settings: object):  # type: ignore[no-untyped-def]
    base: dict[str, object] = {"health_timeout": 1.0, "failures_before_down": 2}
    return create_hub_app(f"sqlite:///{db}", TOKEN, settings=HubSettings(**{**base, **settings}), health_checks=False)  # type: ignore[arg-type]


def replicas_of(hub: httpx.Client, name: str = "counter") -> list[dict[str, object]]:
    return hub.get(f"/v1/envs/{name}").json()["replicas"]


async def test_a_restarted_hub_hands_out_nothing_it_has_not_seen_healthy(tmp_path: Path, counter_url: str) -> None:
    db = tmp_path / "hub.db"
    port = free_port()
    with running_server(create_app(CounterEnv), port=port) as dying:
        with running_server(hub_app(db)) as url, httpx.Client(base_url=url, timeout=30) as hub:
            assert hub.post("/v1/envs", json={"urls": [counter_url, dying]}, headers=AUTH).status_code == 201
            assert [r["status"] for r in replicas_of(hub)] == ["up", "up"]
    # `dying` is gone now; the stored registry still says both were up when this hub stopped
    with running_server(hub_app(db)) as url, httpx.Client(base_url=url, timeout=30) as hub:
        assert [(r["status"], r["verified"]) for r in replicas_of(hub)] == [("unknown", False)] * 2
        async with RegistryClient(url) as registry:
            placement = Placement(registry, "counter", wait=0.3)
            with pytest.raises(NoHealthyReplica):  # nothing is up before this hub checked it
                await placement.acquire()
            await placement.aclose()
            hub.post("/v1/health/check", headers=AUTH)
            # the live one is re-verified; the dead one is down at its first failure (never seen up by this hub)
            assert [(r["url"], r["status"], r["verified"]) for r in replicas_of(hub)] == [
                (counter_url, "up", True), (dying, "down", False)]
            placement = Placement(registry, "counter", wait=0.3)
            assert (await placement.acquire()).url == counter_url
            await placement.aclose()


def test_a_down_replica_is_removed_after_the_grace_period(tmp_path: Path, counter_url: str) -> None:
    port = free_port()
    with running_server(hub_app(tmp_path / "hub.db", remove_after=1.0)) as url, httpx.Client(base_url=url, timeout=30) as hub:
        with running_server(create_app(CounterEnv), port=port) as flaky:
            assert hub.post("/v1/envs", json={"urls": [counter_url, flaky]}, headers=AUTH).status_code == 201
            hub.post("/v1/health/check", headers=AUTH)
        hub.post("/v1/health/check", headers=AUTH)
        assert [r["status"] for r in replicas_of(hub)] == ["up", "up"]  # one failure of 2: still up
        hub.post("/v1/health/check", headers=AUTH)
        down = replicas_of(hub)[1]
        assert down["status"] == "down" and down["failures"] == 2  # marked down: not handed out, still listed
        deadline = time.monotonic() + 20
        while len(replicas_of(hub)) == 2:  # removed once not seen up for remove_after seconds
            assert time.monotonic() < deadline, replicas_of(hub)
            time.sleep(0.2)
            hub.post("/v1/health/check", headers=AUTH)
        assert [r["url"] for r in replicas_of(hub)] == [counter_url]


def test_registration_from_a_restarted_service_replaces_its_old_entry(tmp_path: Path, counter_url: str) -> None:
    port = free_port()
    with running_server(hub_app(tmp_path / "hub.db", failures_before_down=1)) as url, \
            httpx.Client(base_url=url, timeout=30) as hub:
        with running_server(create_app(CounterEnv), port=port) as service:
            assert hub.post("/v1/envs", json={"urls": [counter_url, service]}, headers=AUTH).status_code == 201
        hub.post("/v1/health/check", headers=AUTH)
        old = replicas_of(hub)[1]
        assert old["status"] == "down" and old["failures"] == 1
        with running_server(create_app(CounterEnv), port=port):  # the service's next life, same URL
            assert hub.post("/v1/envs/counter/replicas", json={"url": service}, headers=AUTH).status_code == 409
            r = hub.post("/v1/envs/counter/replicas", json={"url": service, "replace": True}, headers=AUTH)
            assert r.status_code == 201, r.text
            new = r.json()
            assert new["created_at"] > old["created_at"] and new["status"] == "up" and new["failures"] == 0 and new["verified"]
            assert [(x["url"], x["status"]) for x in replicas_of(hub)] == [(counter_url, "up"), (service, "up")]


class CounterV2(CounterEnv):
    version = "0.2.0-test"


async def test_an_upgraded_service_replaces_a_stale_registration_of_its_old_version(tmp_path: Path, counter_url: str) -> None:
    with running_server(hub_app(tmp_path / "hub.db", failures_before_down=1)) as hub_url, \
            running_server(create_app(CounterV2)) as upgraded:
        async with RegistryClient(hub_url, token=TOKEN) as registry:
            with running_server(create_app(CounterEnv)) as old:
                await registry.register([old], meta={"k": 1})
                # the old version is up: an upgraded service must not take the name over
                with pytest.raises(RegistryError) as refused:
                    await registry.join(upgraded, replace=True)
                assert refused.value.status == 409 and "registered as counter 0.1.0" in refused.value.detail
            await registry.check_now()  # the old version's only replica is down now
            record = await registry.join(upgraded, replace=True)
            assert record.version == "0.2.0-test" and [(r.url, r.status.value) for r in record.replicas] == [(upgraded, "up")]
            # without replace (or for the same version) the name stays taken
            with pytest.raises(RegistryError):
                await registry.register([counter_url], name="counter", replace_stale=True)


async def test_one_of_two_replicas_dead_at_collector_start(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """The hub still lists both as up (no check ran since one died): the collector's probe misses the dead
    one, and the whole run goes to the other — no infra error, no warning."""
    with running_server(create_app(CounterEnv)) as alive, running_server(hub_app(tmp_path / "hub.db")) as hub_url:
        with running_server(create_app(CounterEnv)) as dead:
            async with RegistryClient(hub_url, token=TOKEN) as registry:
                await registry.register([dead, alive])
        job = JobConfig(run_name="one-dead", env="counter", hub=hub_url, store=f"sqlite:///{tmp_path / 'runs.db'}",
                        policy=Policy.expert, split="train", concurrency=4)
        with caplog.at_level(logging.WARNING):
            summary = await Collector(job).run()
        async with RegistryClient(hub_url) as registry:
            assert [r.status.value for r in (await registry.get_env("counter")).replicas] == ["up", "up"]
    assert summary.counts == {"success": 15}, summary.counts
    assert summary.stats.infra_retries == 0
    assert not [r for r in caplog.records if r.name.startswith("trajgym")], [r.getMessage() for r in caplog.records]


async def test_placement_waits_for_the_hub_then_fails_clearly(tmp_path: Path) -> None:
    with running_server(hub_app(tmp_path / "hub.db")) as hub_url:
        with running_server(create_app(CounterEnv)) as gone:
            async with RegistryClient(hub_url, token=TOKEN) as registry:
                await registry.register([gone])
        async with RegistryClient(hub_url, token=TOKEN) as registry:
            placement = Placement(registry, "counter", wait=1.0)
            started = time.monotonic()
            with pytest.raises(NoHealthyReplica, match="no healthy replica"):
                await placement.acquire()
            assert time.monotonic() - started >= 0.9  # it kept asking the hub for its wait
            # a replica that registers while the placement waits is used
            with running_server(create_app(CounterEnv)) as late:
                async def register_later() -> None:
                    await asyncio.sleep(0.5)
                    await registry.add_replica("counter", late)

                waiter = asyncio.create_task(register_later())
                placement.wait = 20.0
                lease = await placement.acquire()
                await waiter
                assert lease.url == late
                lease.release()
            await placement.aclose()


def _status(hub_url: str) -> list[tuple[str, str]]:
    try:
        envs = httpx.get(f"{hub_url}/v1/envs", timeout=5).json()["envs"]
    except httpx.HTTPError:
        return []
    return sorted((r["url"], r["status"]) for e in envs for r in e["replicas"])


async def test_env_services_rejoin_a_restarted_hub_and_are_used(spawn: Callable[..., subprocess.Popen[bytes]],  # noqa: F811
                                                                  tmp_path: Path) -> None:
    hub_port, ports = free_port(), [free_port(), free_port()]
    hub_url = f"http://127.0.0.1:{hub_port}"
    urls = sorted(f"http://127.0.0.1:{p}" for p in ports)

    def start_hub(db: str) -> subprocess.Popen[bytes]:
        return spawn("hub", "--port", str(hub_port), "--store", f"sqlite:///{tmp_path / db}", "--token", TOKEN,
                     "--health-interval", "0.3")

    hub = start_hub("hub.db")
    services = [spawn("serve", "tests.support.counter_env:CounterEnv", "--port", str(p), "--register", hub_url, "--hub-token", TOKEN,
                      "--heartbeat", "0.3") for p in ports]

    async def all_up() -> bool:
        return _status(hub_url) == [(u, "up") for u in urls]

    async def collect_on_both() -> None:
        async with RegistryClient(hub_url) as registry:
            placement = Placement(registry, "counter")
            leases = [await placement.acquire() for _ in range(4)]
            assert sorted({lease.url for lease in leases}) == urls
            for lease in leases:
                created = await lease.client.create(task_id="counter-1")
                await lease.client.close(created.session_id)
                lease.release()
            await placement.aclose()

    await wait_for(all_up, what="both env services to register")
    for restart_on in ("hub.db", "fresh.db"):  # the same store (re-validated), then an empty one (re-registered)
        hub.kill()  # no goodbye: the services do not hear of it
        hub.wait(timeout=10)
        hub = start_hub(restart_on)
        await wait_for(all_up, timeout=60, what=f"both replicas up again after a hub restart on {restart_on}")
        await collect_on_both()

    # serve and hub run alone stop cleanly on SIGHUP too: the service leaves the hub first
    services[0].send_signal(signal.SIGHUP)
    assert services[0].wait(timeout=20) in (0, -signal.SIGHUP)
    remaining = [u for u, _ in _status(hub_url)]
    assert remaining == [f"http://127.0.0.1:{ports[1]}"]
    hub.send_signal(signal.SIGHUP)
    assert hub.wait(timeout=20) in (0, -signal.SIGHUP)
    with contextlib.suppress(subprocess.TimeoutExpired):
        services[1].wait(timeout=0.1)
    assert services[1].poll() is None  # the other service keeps running while its hub is away
