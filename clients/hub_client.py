"""Hub registry client and episode placement on env replicas.

`RegistryClient(hub_url, token=None)` — aiohttp client of the hub API (`trajgym hub`):
    await list_envs() -> list[EnvRecord]           await get_env(name) -> EnvRecord
    await register(urls, name=None, meta=None, replace_stale=False) -> EnvRecord   (token)
    await unregister(name) -> None                                 (token)
    await add_replica(name, url, replace=False) -> Replica         (token; replace: an entry of the same
                                                                   URL is replaced, not a 409)
    await remove_replica(name, replica_id) -> None                 (token)
    await remove_replica_url(name, url) -> bool                    (token; False if absent)
    await join(url, name=None, replace=False) -> EnvRecord
                                               register, or add `url` as a replica if the env exists
                                               (idempotent; what `trajgym serve --register` does, with
                                               replace=True: a restarted service replaces its old entry,
                                               an upgraded one a registration of its old version that
                                               has no replica up)
    await check_now() -> list[EnvRecord]       run a health-check round on the hub (token)
    await healthy_replicas(name) -> list[Replica]
  `EnvRecord` / `Replica` are the pydantic models of `wire.hub_api` (`record.info` is the
  env's /v1/info as a dict; `EnvInfo.model_validate(record.info)` types it).

`Placement(registry, name, *, refresh=2.0, probe_ttl=1.0, cooldown=10.0, wait=30.0, env_timeout=60.0,
           max_connections=512)` — places episodes of env `name` on its replicas:
    lease = await placement.acquire(exclude=())   least-loaded healthy replica; the lease is sticky:
                                                  run create/step/close of ONE episode on lease.client.
                                                  A replica that does not answer its probe is a placement
                                                  miss: another one is taken; with none left, acquire
                                                  asks the hub again until `wait` s have passed, then
                                                  raises NoHealthyReplica
    lease.client -> AsyncEnvClient                bound to lease.url for the whole episode
    lease.release(failed=False)                   end of episode; failed=True puts the replica in a
                                                  local cool-down (skipped for `cooldown` s)
    async with placement.lease() as lease: ...    releases on exit; on EnvUnavailable: failed=True
    await placement.reader() -> AsyncEnvClient    any healthy replica, for info()/tasks()
    await placement.info() -> EnvInfo             the env's /v1/info as registered in the hub
    await placement.aclose()
  Load = open sessions from each replica's live GET /healthz minus this process's leases at probe
  time, plus its leases now (divided by max_sessions); ties go round-robin. Replicas come from the
  hub (status up). The first list and each replica's first probe are awaited; afterwards the list
  (every `refresh` s) and the probes (every `probe_ttl` s) are renewed in the background, so
  acquire() does not wait on the network. If the hub is away the last list is kept.

Errors: a replica that dies mid-episode surfaces as `wire.errors.EnvUnavailable` from
`lease.client` (retry the episode on a new lease). `NoHealthyReplica` and `HubUnavailable` are
`EnvUnavailable` subclasses (infra: retry later); `EnvNotRegistered` (404) and `RegistryError`
(other 4xx from the hub, e.g. 401/403/409/422) are answers, not infra failures.

Collector integration sketch:
    registry = RegistryClient("http://hub:8080")
    placement = Placement(registry, "webshop", env_timeout=cfg.env_timeout)
    for attempt in range(max_attempts):
        try:
            async with placement.lease() as lease:
                created = await lease.client.create(task_id=...)
                ... await lease.client.step(created.session_id, action) ...
            break
        except EnvUnavailable:      # replica died (or none healthy): retry elsewhere
            await asyncio.sleep(backoff)
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections.abc import AsyncIterator, Collection
from dataclasses import dataclass
from typing import Any, Self

import aiohttp

from clients.bounded import read_json
from clients.env_client import AsyncEnvClient
from wire.errors import EnvClientError, EnvUnavailable
from envs.types import EnvInfo
from wire.hub_api import EnvList, EnvRecord, Replica, normalize_base_url

log = logging.getLogger("trajgym.registry")


class RegistryError(EnvClientError):
    """The hub answered with a 4xx status."""

    def __init__(self, detail: str, status: int) -> None:
        super().__init__(f"hub: {status} {detail}")
        self.detail = detail
        self.status = status


class EnvNotRegistered(RegistryError):
    pass


class HubUnavailable(EnvUnavailable):
    """The hub could not be reached (transport, timeout, 5xx)."""


class NoHealthyReplica(EnvUnavailable):
    """The env has no replica that is up (and not cooling down after a failure)."""


class RegistryClient:
    def __init__(self, hub_url: str, *, token: str | None = None, timeout: float = 10.0,
                 session: aiohttp.ClientSession | None = None, max_body_bytes: int = 32 << 20) -> None:
        self.hub_url = normalize_base_url(hub_url)
        self.token = token
        self.max_body_bytes = max_body_bytes  # an env list is KB per env; a larger answer is refused unread
        self.timeout = aiohttp.ClientTimeout(total=timeout)
        self._session = session
        self._owns_session = session is None

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=self.timeout)
            self._owns_session = True
        return self._session

    async def aclose(self) -> None:
        if self._session is not None and self._owns_session and not self._session.closed:
            await self._session.close()

    async def request(self, method: str, path: str, json: Any = None, auth: bool = False) -> Any:
        url = self.hub_url + path
        headers = {"Authorization": f"Bearer {self.token}"} if auth and self.token else None
        try:
            async with self._http().request(method, url, json=json, headers=headers) as resp:
                body = await read_json(resp, self.max_body_bytes)
                status = resp.status
        except (TimeoutError, aiohttp.ClientError, ValueError) as err:
            raise HubUnavailable(f"{method} {url} failed: {type(err).__name__}: {err}") from err
        if status < 400:
            return body
        detail = body.get("detail") if isinstance(body, dict) else body
        detail = detail if isinstance(detail, str) else str(detail)
        if status >= 500:
            raise HubUnavailable(f"hub error {status}: {detail}", status=status)
        raise (EnvNotRegistered if status == 404 else RegistryError)(detail, status)

    # ----- reads ------------------------------------------------------------------------
    async def list_envs(self) -> list[EnvRecord]:
        return EnvList.model_validate(await self.request("GET", "/v1/envs")).envs

    async def get_env(self, name: str) -> EnvRecord:
        return EnvRecord.model_validate(await self.request("GET", f"/v1/envs/{name}"))

    async def healthy_replicas(self, name: str) -> list[Replica]:
        return (await self.get_env(name)).healthy_replicas

    # ----- writes (token) ---------------------------------------------------------------
    async def register(self, urls: list[str], name: str | None = None, meta: dict[str, Any] | None = None,
                       replace_stale: bool = False) -> EnvRecord:
        body: dict[str, Any] = {"urls": urls, "name": name, "meta": meta or {}}
        if replace_stale:
            body["replace_stale"] = True
        return EnvRecord.model_validate(await self.request("POST", "/v1/envs", json=body, auth=True))

    async def unregister(self, name: str) -> None:
        await self.request("DELETE", f"/v1/envs/{name}", auth=True)

    async def add_replica(self, name: str, url: str, replace: bool = False) -> Replica:
        body: dict[str, Any] = {"url": url, "replace": True} if replace else {"url": url}
        return Replica.model_validate(await self.request("POST", f"/v1/envs/{name}/replicas", json=body, auth=True))

    async def remove_replica(self, name: str, replica_id: int) -> None:
        await self.request("DELETE", f"/v1/envs/{name}/replicas/{replica_id}", auth=True)

    async def remove_replica_url(self, name: str, url: str) -> bool:
        url = normalize_base_url(url)
        for replica in (await self.get_env(name)).replicas:
            if replica.url == url:
                with contextlib.suppress(EnvNotRegistered):
                    await self.remove_replica(name, replica.id)
                return True
        return False

    async def join(self, url: str, name: str | None = None, meta: dict[str, Any] | None = None,
                   replace: bool = False) -> EnvRecord:
        """Register the env served at `url`, or add `url` as a replica of the already registered env (idempotent;
        with `replace` an entry of the same URL is replaced by a fresh one)."""
        url = normalize_base_url(url)
        try:  # replace: also an old registration of another version with no replica up (an upgraded service)
            return await self.register([url], name=name, meta=meta, replace_stale=replace)
        except RegistryError as err:
            if err.status != 409:
                raise
        if name is None:  # the name the hub would have used: the env's own
            async with AsyncEnvClient(url, timeout=self.timeout.total or 10.0) as env:
                name = (await env.info()).name
        try:
            await self.add_replica(name, url, replace=replace)
        except RegistryError as err:
            record = await self.get_env(name)
            if err.status != 409 or all(r.url != url for r in record.replicas):
                raise
            return record
        return await self.get_env(name)

    async def check_now(self) -> list[EnvRecord]:
        return EnvList.model_validate(await self.request("POST", "/v1/health/check", auth=True)).envs


@dataclass
class _ReplicaLoad:
    url: str
    client: AsyncEnvClient
    held: int = 0  # leases of this process now
    probed_sessions: int = 0  # open sessions at the last probe
    held_at_probe: int = 0
    max_sessions: int | None = None
    probed_at: float = float("-inf")
    cool_until: float = float("-inf")
    probing: bool = False

    def load(self) -> tuple[float, int]:
        estimate = max(0, self.probed_sessions - self.held_at_probe) + self.held
        return (estimate / self.max_sessions if self.max_sessions else float(estimate)), estimate


class Lease:
    """One episode's placement: `client` talks to `url` only. Release exactly once (idempotent)."""

    def __init__(self, placement: Placement, replica: _ReplicaLoad) -> None:
        self._placement = placement
        self._replica = replica
        self.url = replica.url
        self.client = replica.client
        self.released = False

    def release(self, failed: bool = False) -> None:
        if not self.released:
            self.released = True
            self._placement._release(self._replica, failed)


class Placement:
    def __init__(self, registry: RegistryClient, name: str, *, refresh: float = 2.0, probe_ttl: float = 1.0,
                 cooldown: float = 10.0, wait: float = 30.0, probe_timeout: float = 5.0, env_timeout: float = 60.0,
                 max_connections: int = 512, channel: bool = False) -> None:
        self.registry = registry
        self.name = name
        self.refresh = refresh
        self.probe_ttl = probe_ttl
        self.cooldown = cooldown
        self.wait = wait  # how long acquire() keeps asking the hub for a healthy replica when it has none
        self.poll = min(0.5, refresh)  # while waiting: one hub request per `poll` s, shared by all waiters
        self.probe_timeout = probe_timeout
        # channel: session operations over each replica's session channel where it has one (clients.env_client)
        self._client_kwargs = {"timeout": env_timeout, "max_connections": max_connections, "channel": channel}
        self._replicas: dict[str, _ReplicaLoad] = {}
        self._healthy: list[str] = []
        self._record: EnvRecord | None = None
        self._listed_at = float("-inf")
        self._lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[None]] = set()
        self._refreshing = False
        self._turn = itertools.count()

    async def aclose(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for replica in self._replicas.values():
            await replica.client.aclose()

    @property
    def leases(self) -> dict[str, int]:
        """Leases held now, by replica URL."""
        return {url: r.held for url, r in self._replicas.items()}

    async def _refresh_list(self) -> None:
        try:
            record = await self.registry.get_env(self.name)
        except HubUnavailable as err:
            if self._record is None:
                raise
            log.warning("hub unavailable, keeping the last replica list of %s: %s", self.name, err)
            self._listed_at = time.monotonic()
            return
        self._record = record
        self._healthy = [r.url for r in record.healthy_replicas]
        for url in self._healthy:
            if url not in self._replicas:
                self._replicas[url] = _ReplicaLoad(url, AsyncEnvClient(url, **self._client_kwargs))  # type: ignore[arg-type]
        self._listed_at = time.monotonic()

    async def _probe(self, replica: _ReplicaLoad) -> None:
        held = replica.held
        try:
            health = await asyncio.wait_for(replica.client.health(), self.probe_timeout)
        except (EnvClientError, TimeoutError) as err:
            # A placement miss, not a failure: the replica cools down and another one is used; it is
            # probed again (awaited) before it is handed out after the cool-down.
            log.info("replica %s of %s did not answer /healthz (placement miss): %s", replica.url, self.name,
                     err or type(err).__name__)
            replica.cool_until = time.monotonic() + self.cooldown
            replica.probed_at = float("-inf")
            return
        replica.probed_sessions = int(health.get("sessions", 0))
        replica.max_sessions = health.get("max_sessions")
        replica.held_at_probe = held
        replica.probed_at = time.monotonic()

    def _background(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _refresh_in_background(self) -> None:
        try:
            await self._refresh_list()
        except EnvClientError as err:  # e.g. unregistered meanwhile: keep the last list, say so
            log.warning("could not refresh the replicas of %s: %s", self.name, err)
            self._listed_at = time.monotonic()
        finally:
            self._refreshing = False

    async def _probe_in_background(self, replica: _ReplicaLoad) -> None:
        try:
            await self._probe(replica)
        finally:
            replica.probing = False

    async def _candidates(self, exclude: Collection[str]) -> list[_ReplicaLoad]:
        """Replicas to choose from. Only the first list and first probe of a replica are awaited;
        later refreshes run in the background (stale-while-revalidate), so acquire stays fast."""
        if self._record is None:
            async with self._lock:
                if self._record is None:
                    await self._refresh_list()
        elif time.monotonic() - self._listed_at >= self.refresh and not self._refreshing:
            self._refreshing = True
            self._background(self._refresh_in_background())
        excluded = {normalize_base_url(u) for u in exclude}
        now = time.monotonic()
        pool = [self._replicas[u] for u in self._healthy if u not in excluded and self._replicas[u].cool_until <= now]
        unprobed = [r for r in pool if r.probed_at == float("-inf")]
        if unprobed:
            async with self._lock:
                unprobed = [r for r in unprobed if r.probed_at == float("-inf")]
                await asyncio.gather(*(self._probe(r) for r in unprobed))
            now = time.monotonic()
            pool = [r for r in pool if r.cool_until <= now]
        for replica in pool:
            if now - replica.probed_at >= self.probe_ttl and not replica.probing:
                replica.probing = True
                self._background(self._probe_in_background(replica))
        return pool

    async def _relist(self) -> None:
        """A fresh replica list from the hub while waiting for a healthy one (shared by concurrent waiters)."""
        async with self._lock:
            if time.monotonic() - self._listed_at < self.poll:
                return
            try:
                await self._refresh_list()
            except EnvClientError as err:  # the hub away, or the env unregistered meanwhile: keep waiting
                log.info("could not list the replicas of %s: %s", self.name, err)
                self._listed_at = time.monotonic()

    async def acquire(self, exclude: Collection[str] = ()) -> Lease:
        """Lease the least-loaded healthy replica (not in `exclude`) for one episode.

        With none available now (every replica down, cooling down after a miss, or excluded), ask the
        hub again every `poll` s until `wait` s have passed; then raise `NoHealthyReplica`."""
        deadline: float | None = None
        while True:
            pool = await self._candidates(exclude)
            if pool:
                break
            now = time.monotonic()
            if deadline is None:
                deadline = now + self.wait
            if now >= deadline:
                raise NoHealthyReplica(f"env {self.name!r} has no healthy replica"
                                       + (f" outside {sorted(exclude)}" if exclude else "")
                                       + (f" (the hub listed none that answered within {self.wait:.0f} s)" if self.wait else ""))
            await asyncio.sleep(min(self.poll, deadline - now))
            await self._relist()
        turn = next(self._turn)
        order = {r.url: (i - turn) % len(pool) for i, r in enumerate(pool)}
        best = min(pool, key=lambda r: (*r.load(), order[r.url]))
        best.held += 1
        return Lease(self, best)

    def _release(self, replica: _ReplicaLoad, failed: bool) -> None:
        replica.held -= 1
        if failed:
            replica.cool_until = time.monotonic() + self.cooldown
            replica.probed_at = float("-inf")  # probed again before it is handed out after the cool-down

    @contextlib.asynccontextmanager
    async def lease(self, exclude: Collection[str] = ()) -> AsyncIterator[Lease]:
        """`async with placement.lease() as lease:` — released on exit; marked failed on `EnvUnavailable`."""
        lease = await self.acquire(exclude)
        try:
            yield lease
        except EnvUnavailable:
            lease.release(failed=True)
            raise
        finally:
            lease.release()

    async def reader(self) -> AsyncEnvClient:
        """A client of some healthy replica for reads (info, tasks); no lease is held."""
        lease = await self.acquire()
        lease.release()
        return lease.client

    async def info(self) -> EnvInfo:
        if self._record is None:
            async with self._lock:
                await self._refresh_list()
        assert self._record is not None
        return EnvInfo.model_validate(self._record.info)
