"""Remote bodies are read with a byte cap and a total timeout (issue 20).

A hostile replica answers `/healthz` with a body that never ends, lies about its size, drips a
byte at a time or nests JSON beyond recursion: the hub's probe fails with a message within its
timeout, having read about its cap (`PROBE_MAX_BYTES`), and the hub keeps answering others. The
same answers to the env client, the hub client and the gymnasium client are typed errors.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import psutil
import pytest

from clients.bounded import BadJson, BodyTooLarge, parse_json
from clients.env_client import AsyncEnvClient
from clients.gym_remote import RemoteGymEnv
from clients.hub_client import HubUnavailable, RegistryClient
from services.app import create_app
from services.hub.app import HubSettings, create_hub_app
from services.hub.health import PROBE_MAX_BYTES, probe
from services.hub.store import CheckResult
from tests.support.counter_env import CounterEnv
from tests.support.hostile import HostileServer
from tests.support.server import running_server
from wire.errors import EnvUnavailable

TOKEN = "bodies-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
# What a capped reader may have pulled besides the cap: loopback socket buffers (auto-tuned up to a few MiB).
SLACK = 16 << 20


@pytest.fixture
def hostile() -> Iterator[HostileServer]:
    info = CounterEnv.info(CounterEnv.load_data(None)).model_dump(mode="json")
    with HostileServer(info) as server:
        yield server


async def _probe(url: str, timeout: float = 3.0) -> tuple[CheckResult, float]:
    async with aiohttp.ClientSession() as http:
        started = time.monotonic()
        result, _ = await probe(http, url, timeout, None)
        return result, time.monotonic() - started


@pytest.mark.parametrize("mode", ["endless", "declared"])
async def test_probe_of_an_oversized_healthz_reads_about_the_cap(hostile: HostileServer, mode: str) -> None:
    hostile.mode = mode
    result, elapsed = await _probe(hostile.url)
    assert not result.ok and "larger than" in (result.error or "")
    assert elapsed < 30  # the timeout is 3 s; generous for a loaded machine
    assert hostile.sent <= PROBE_MAX_BYTES + SLACK, hostile.sent  # unbounded before: GB/s for the whole timeout


async def test_probe_of_a_dripping_healthz_ends_at_the_timeout(hostile: HostileServer) -> None:
    hostile.mode = "drip"
    result, elapsed = await _probe(hostile.url, timeout=1.0)
    assert not result.ok and "TimeoutError" in (result.error or "")
    assert 0.5 < elapsed < 20


@pytest.mark.parametrize(("mode", "words"), [("nested", "nested too deeply"), ("counts", "less than or equal")])
async def test_probe_of_a_malformed_healthz_is_a_failed_check(hostile: HostileServer, mode: str, words: str) -> None:
    hostile.mode = mode
    result, _ = await _probe(hostile.url)
    assert not result.ok and words in (result.error or "")


def test_hub_health_round_against_an_endless_replica_is_bounded_and_others_are_served(hostile: HostileServer, tmp_path: Path) -> None:
    hub = create_hub_app(f"sqlite:///{tmp_path / 'hub.db'}", TOKEN, health_checks=False,
                         settings=HubSettings(health_timeout=3.0, info_timeout=3.0, failures_before_down=1))
    proc = psutil.Process()
    with running_server(hub) as url, httpx.Client(base_url=url, timeout=60) as http:
        r = http.post("/v1/envs", json={"urls": [hostile.url], "name": "evil"}, headers=AUTH)
        assert r.status_code == 201, r.text
        hostile.mode = "endless"
        rss_before = proc.memory_info().rss
        round_times: list[float] = []
        envs: list[Any] = []
        stop = threading.Event()

        def health_rounds() -> None:  # back to back, while the victim below asks
            with httpx.Client(base_url=url, timeout=60, headers=AUTH) as admin:
                while not stop.is_set() or len(round_times) < 3:
                    started = time.monotonic()
                    envs[:] = admin.post("/v1/health/check").json()["envs"]
                    round_times.append(time.monotonic() - started)

        thread = threading.Thread(target=health_rounds)
        thread.start()
        victim_times: list[float] = []
        try:
            for _ in range(20):
                started = time.monotonic()
                assert http.get("/v1/envs").status_code == 200
                victim_times.append(time.monotonic() - started)
        finally:
            stop.set()
            thread.join(60)
        assert len(round_times) >= 3 and max(round_times) < 30, round_times
        replica = envs[0]["replicas"][0]
        assert replica["status"] == "down" and "larger than" in replica["last_error"]
        assert hostile.sent <= len(round_times) * (PROBE_MAX_BYTES + SLACK), (hostile.sent, len(round_times))
        assert proc.memory_info().rss - rss_before < 200 << 20  # before: the whole body, each round
        assert max(victim_times) < 10, victim_times
        assert http.get("/healthz").status_code == 200


def test_registration_refuses_a_name_past_the_registry_columns(hostile: HostileServer, tmp_path: Path) -> None:
    hostile.mode = "longname"
    hub = create_hub_app(f"sqlite:///{tmp_path / 'hub.db'}", TOKEN, health_checks=False, settings=HubSettings(info_timeout=3.0))
    with running_server(hub) as url:
        r = httpx.post(url + "/v1/envs", json={"urls": [hostile.url], "name": "long"}, headers=AUTH, timeout=30)
    assert r.status_code == 422 and "too long" in r.json()["detail"]


def test_registration_of_an_endless_replica_is_a_422_with_a_message(hostile: HostileServer, tmp_path: Path) -> None:
    hostile.mode = "endless"
    hub = create_hub_app(f"sqlite:///{tmp_path / 'hub.db'}", TOKEN, health_checks=False, settings=HubSettings(info_timeout=3.0))
    with running_server(hub) as url:
        r = httpx.post(url + "/v1/envs", json={"urls": [hostile.url]}, headers=AUTH, timeout=60)
    assert r.status_code == 422 and "larger than" in r.json()["detail"]
    assert hostile.sent <= PROBE_MAX_BYTES + SLACK


@pytest.mark.parametrize("mode", ["endless", "declared"])
async def test_env_client_refuses_an_oversized_answer(hostile: HostileServer, mode: str) -> None:
    hostile.mode = mode
    async with AsyncEnvClient(hostile.url, timeout=10, max_body_bytes=1 << 20) as client:
        with pytest.raises(EnvUnavailable, match="larger than"):
            await client.health()  # /healthz: capped at 64 KiB whatever max_body_bytes
        with pytest.raises(EnvUnavailable, match="larger than"):
            await client.state("x")
    assert hostile.sent <= 2 * ((1 << 20) + SLACK)


async def test_env_client_inflates_a_gzip_bomb_only_to_the_cap(hostile: HostileServer) -> None:
    hostile.mode = "gzip"
    rss_before = psutil.Process().memory_info().rss
    async with AsyncEnvClient(hostile.url, timeout=10, max_body_bytes=1 << 20) as client:
        with pytest.raises(EnvUnavailable, match="larger than"):
            await client.state("x")  # aiohttp inflates in bounded chunks; the cap counts inflated bytes
    assert psutil.Process().memory_info().rss - rss_before < 48 << 20


async def test_env_client_reads_normal_answers(hostile: HostileServer) -> None:
    async with AsyncEnvClient(hostile.url, timeout=10) as client:
        assert (await client.health())["max_sessions"] == 10
        assert (await client.info()).name == "counter"


async def test_registry_client_refuses_an_oversized_answer(hostile: HostileServer) -> None:
    hostile.mode = "endless"
    async with RegistryClient(hostile.url, timeout=10, max_body_bytes=1 << 20) as registry:
        with pytest.raises(HubUnavailable, match="larger than"):
            await registry.list_envs()


def test_gym_client_refuses_an_oversized_or_dripping_answer(hostile: HostileServer) -> None:
    env = RemoteGymEnv(hostile.url, timeout=1.0)  # /v1/info is served normally
    try:
        hostile.mode = "endless"
        with pytest.raises(EnvUnavailable, match="larger than"):
            env.reset(seed=1)
        hostile.mode = "gzip"
        with pytest.raises(EnvUnavailable, match="compressed"):
            env.reset(seed=1)
        hostile.mode = "drip"
        started = time.monotonic()
        with pytest.raises(EnvUnavailable, match="Timeout"):
            env.reset(seed=1)
        assert time.monotonic() - started < 20  # a byte every 0.2 s never trips httpx's per-read timeout
    finally:
        env.close()


def test_env_client_still_plays_against_a_real_service() -> None:
    with running_server(create_app(CounterEnv)) as url:
        env = RemoteGymEnv(url)
        try:
            obs, info = env.reset(options={"task_id": "counter-1"})
            assert "Current value" in obs and info["task_id"] == "counter-1"
        finally:
            env.close()


def test_parse_json_errors_are_value_errors() -> None:
    assert parse_json(b"") is None and parse_json(b' {"a": 1} ') == {"a": 1}
    for body in (b"[" * 100_000, b"{", b"\xff\xfe\x00"):
        with pytest.raises(BadJson):
            parse_json(body)
    assert issubclass(BadJson, ValueError) and issubclass(BodyTooLarge, ValueError)
