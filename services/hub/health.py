"""Replica probes and the background health checker of the hub.

A probe is `GET /healthz` (open sessions, max sessions) plus, while a replica is not
yet verified, `GET /v1/info` to check it serves the registered env name and version.
Every read is bounded: `timeout` covers connecting and reading the whole body, and a body
over `PROBE_MAX_BYTES` is refused after reading at most that much (a replica is not trusted to answer small).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import aiohttp
import anyio
from pydantic import ValidationError

from clients.bounded import read_json
from envs.types import EnvInfo
from services.hub.store import CheckResult, HubStore, ReplicaTarget
from wire.env_api import Health

log = logging.getLogger("trajgym.hub")

# /healthz is ~60 bytes and /v1/info a few KB (the four envs: 1.3-4.6 KB); 1 MiB leaves room for big tool schemas.
PROBE_MAX_BYTES = 1 << 20
# The hub's registry columns (services/hub/models.py): longer names would fail the insert on PostgreSQL.
MAX_ENV_NAME, MAX_VERSION = 200, 100


async def fetch_info(http: aiohttp.ClientSession, url: str, timeout: float) -> EnvInfo:
    """The replica's GET /v1/info; raises `ProbeError` with a readable reason."""
    body = await _get_json(http, url + "/v1/info", timeout)
    try:
        info = EnvInfo.model_validate(body)
    except ValidationError as err:
        raise ProbeError(f"{url}/v1/info is not an env info document ({err.error_count()} errors)") from err
    if len(info.name) > MAX_ENV_NAME or len(info.version) > MAX_VERSION:
        raise ProbeError(f"{url}/v1/info: env name or version too long (at most {MAX_ENV_NAME} and {MAX_VERSION} characters)")
    return info


class ProbeError(Exception):
    pass


async def _get_json(http: aiohttp.ClientSession, url: str, timeout: float) -> Any:
    try:
        async with http.get(url, timeout=aiohttp.ClientTimeout(total=timeout), allow_redirects=False) as resp:
            if resp.status != 200:
                raise ProbeError(f"GET {url}: HTTP {resp.status}")
            return await read_json(resp, PROBE_MAX_BYTES)
    except ProbeError:
        raise
    except (TimeoutError, aiohttp.ClientError, ValueError) as err:
        raise ProbeError(f"GET {url}: {type(err).__name__}: {err}".rstrip(": ")) from err


async def probe(http: aiohttp.ClientSession, url: str, timeout: float, expect: tuple[str, str] | None,
                replica_id: int = 0, read_info: bool = False) -> tuple[CheckResult, EnvInfo | None]:
    """Check one replica. With `expect=(env_name, version)` its /v1/info must match (else a fatal result);
    `read_info` reads /v1/info without expectation (registration)."""
    info: EnvInfo | None = None
    try:
        health = Health.model_validate(await _get_json(http, url + "/healthz", timeout))
        if expect is not None or read_info:
            info = await fetch_info(http, url, timeout)
        if expect is not None and info is not None and (info.name, info.version) != expect:
            return CheckResult(replica_id, ok=False, verified=False, fatal=True,
                               error=f"serves {info.name} {info.version}, registered as {expect[0]} {expect[1]}"), info
    except (ProbeError, ValidationError) as err:
        return CheckResult(replica_id, ok=False, verified=False, error=str(err)[:500]), None
    return CheckResult(replica_id, ok=True, verified=True, sessions=health.sessions, max_sessions=health.max_sessions), info


class HealthChecker:
    """Probes every registered replica each `interval` seconds and records up/down in the store.

    A replica is `up` only after a check of this hub passed (the hub forgets every status when it
    starts: `HubStore.forget_health`); it goes `down` after `failures_before_down` consecutive failed
    checks (after the first one if this hub never saw it up), and is removed from the registry once it
    has not been seen up for `remove_after` seconds (None: kept)."""

    def __init__(self, store: HubStore, http: Callable[[], aiohttp.ClientSession], *, interval: float, timeout: float,
                 failures_before_down: int, remove_after: float | None = None) -> None:
        self.store = store
        self._http = http
        self.interval = interval
        self.timeout = timeout
        self.failures_before_down = failures_before_down
        self.remove_after = remove_after
        self._lock = asyncio.Lock()
        self.rounds = 0

    async def check_once(self) -> int:
        """One round over all replicas; returns how many were probed."""
        async with self._lock:
            targets: list[ReplicaTarget] = await anyio.to_thread.run_sync(self.store.targets)
            http = self._http()
            results = await asyncio.gather(*(self._check(http, t) for t in targets))
            removed = await anyio.to_thread.run_sync(self.store.record_checks, results, self.failures_before_down,
                                                     self.remove_after)
            for env, url in removed:
                log.warning("removed replica %s of %s: down and not seen up for %.0f s", url, env, self.remove_after)
            self.rounds += 1
            return len(targets)

    async def _check(self, http: aiohttp.ClientSession, target: ReplicaTarget) -> CheckResult:
        # /v1/info is re-read until the replica is verified, and whenever it comes back from down.
        verify = not target.verified or target.status != "up"
        result, _ = await probe(http, target.url, self.timeout, (target.env_name, target.version) if verify else None, target.id)
        if result.ok and not verify:
            result = CheckResult(result.id, ok=True, verified=True, sessions=result.sessions, max_sessions=result.max_sessions)
        if not result.ok and target.status == "up":
            log.warning("replica %s of %s failed a health check: %s", target.url, target.env_name, result.error)
        return result

    async def run(self) -> None:
        while True:
            try:
                await self.check_once()
            except asyncio.CancelledError:
                raise
            except Exception:  # a failing round (e.g. the database away) must not stop the checker
                log.exception("health check round failed")
            await asyncio.sleep(self.interval)
