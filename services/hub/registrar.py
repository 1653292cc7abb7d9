"""Self-registration of an env service with a hub (`trajgym serve ENV --register HUB_URL`).

At start (after the server listens) the service joins the hub — it registers the env, or adds
itself as a replica if the env is already registered (replacing an entry of the same URL left by
an earlier life of this service) — retrying with backoff while the hub is away. Then it stays
joined: every `heartbeat` seconds it checks that the hub still lists its URL and joins again when
the hub forgot it (a hub restarted on an empty store, a replica removed after a long outage, the
env unregistered). At shutdown it removes its replica (the env stays registered).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from typing import Any

import aiohttp

from wire.errors import EnvClientError
from clients.hub_client import EnvNotRegistered, RegistryClient, RegistryError
from wire.hub_api import normalize_base_url

log = logging.getLogger("trajgym.registrar")

WILDCARD_HOSTS = ("", "0.0.0.0", "::", "[::]")


def _host_in_url(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def default_public_url(host: str, port: int) -> str:
    """The URL others reach this service at: the bound host, or this machine's hostname when bound to all interfaces."""
    return f"http://{_host_in_url(socket.gethostname() if host in WILDCARD_HOSTS else host)}:{port}"


def local_url(host: str, port: int) -> str:
    return f"http://{_host_in_url('127.0.0.1' if host in WILDCARD_HOSTS else host)}:{port}"


class SelfRegistration:
    def __init__(self, hub_url: str, public_url: str, local: str, token: str | None, *,
                 max_backoff: float = 5.0, stop_timeout: float = 5.0, heartbeat: float = 10.0) -> None:
        self.hub_url = normalize_base_url(hub_url)
        self.public_url = normalize_base_url(public_url)
        self.local = local
        self.registry = RegistryClient(self.hub_url, token=token, timeout=10.0)
        self.max_backoff = max_backoff
        self.stop_timeout = stop_timeout
        self.heartbeat = heartbeat
        self.name: str | None = None
        self.joined = asyncio.Event()
        self.joins = 0  # how many times this service (re)joined the hub
        self._task: asyncio.Task[None] | None = None

    async def start(self, service: Any) -> None:
        """`create_app(on_ready=...)` callback: join in the background (the server is not listening yet)."""
        self.name = service.env_cls.name
        self._task = asyncio.create_task(self._run())

    async def _wait_listening(self) -> None:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2.0)) as http:
            while True:
                with contextlib.suppress(aiohttp.ClientError, asyncio.TimeoutError):
                    async with http.get(self.local + "/readyz") as resp:
                        if resp.status == 200:
                            return
                await asyncio.sleep(0.05)

    async def _run(self) -> None:
        await self._wait_listening()
        while await self._join_loop():
            await self._stay_joined()

    async def _join_loop(self) -> bool:
        """Join, retrying while the hub is away; False when the hub refuses the token (no point retrying)."""
        backoff = 0.2
        while True:
            try:
                record = await self.registry.join(self.public_url, name=self.name, replace=True)
            except RegistryError as err:
                if err.status in (401, 403):
                    log.error("hub %s refused the registration of %s (check --hub-token): %s", self.hub_url, self.public_url, err)
                    return False
                log.warning("hub %s refused the registration of %s, retrying: %s", self.hub_url, self.public_url, err)
            except EnvClientError as err:
                log.warning("hub %s unreachable, retrying in %.1f s: %s", self.hub_url, backoff, err)
            else:
                self.joins += 1
                log.info("registered %s as a replica of %s at %s", self.public_url, record.name, self.hub_url)
                self.joined.set()
                return True
            await asyncio.sleep(backoff)
            backoff = min(self.max_backoff, backoff * 2)

    async def _stay_joined(self) -> None:
        """Return when the hub no longer lists this replica (then the caller joins again)."""
        assert self.name is not None
        away = False
        while True:
            await asyncio.sleep(self.heartbeat)
            try:
                record = await self.registry.get_env(self.name)
            except EnvNotRegistered:
                log.warning("hub %s no longer knows env %s: registering again", self.hub_url, self.name)
                return
            except EnvClientError as err:  # the hub is away (restarting?): it re-validates us when back
                if not away:
                    log.warning("hub %s unreachable: %s (will check again every %.0f s)", self.hub_url, err, self.heartbeat)
                away = True
                continue
            if away:
                log.info("hub %s is back", self.hub_url)
                away = False
            if all(r.url != self.public_url for r in record.replicas):
                log.warning("hub %s no longer lists %s as a replica of %s: joining again", self.hub_url, self.public_url, self.name)
                return

    async def stop(self) -> None:
        """Leave the hub: remove this replica (best effort, bounded by `stop_timeout`)."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        try:
            if self.joined.is_set() and self.name is not None:
                await asyncio.wait_for(self.registry.remove_replica_url(self.name, self.public_url), self.stop_timeout)
                log.info("removed replica %s from %s", self.public_url, self.hub_url)
        except (TimeoutError, EnvClientError) as err:
            log.warning("could not remove replica %s from the hub: %s", self.public_url, err)
        finally:
            await self.registry.aclose()
