"""Loopback port helpers shared by the process launchers (quickstart, model server, tests, benchmarks),
and the listening socket of a service (`bind_port`: a taken port is a `PortInUse` naming it)."""

from __future__ import annotations

import errno
import random
import socket
from pathlib import Path


class PortInUse(OSError):
    """Another process listens on the port a service was asked to bind."""

    def __init__(self, host: str, port: int) -> None:
        super().__init__(errno.EADDRINUSE, f"port {port} on {host} is already in use")
        self.host = host
        self.port = port

    def __str__(self) -> str:
        return str(self.strerror)


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free on `host` a moment ago (the OS picks it)."""
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_port_range(count: int, host: str = "127.0.0.1", attempts: int = 500) -> int:
    """The first of `count` consecutive ports that were all free on `host` a moment ago (`serve --workers`).

    Drawn below the kernel's ephemeral range, where the OS takes the local ports of outgoing connections:
    on a busy machine a port next to one `free_port()` returned is often such a connection's."""
    low = _ephemeral_low()
    lo, hi = (10_000, low - count) if low - count > 12_000 else (low, 65_536 - count)
    for _ in range(attempts):
        base = random.randrange(lo, hi)
        if all(port_is_free(host, base + i) for i in range(count)):
            return base
    raise OSError(errno.EADDRINUSE, f"no {count} consecutive free ports found on {host}")


def bind_port(host: str, port: int) -> socket.socket:
    """A listening-ready TCP socket bound to `host:port` (SO_REUSEADDR, like uvicorn's own).

    Raises `PortInUse` when something else holds the port; other bind errors (a host that is
    not this machine's, a privileged port) propagate as the `OSError` they are."""
    family = socket.AF_INET6 if ":" in host.strip("[]") else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host.strip("[]"), port))
    except OSError as err:
        sock.close()
        if err.errno == errno.EADDRINUSE:
            raise PortInUse(host, port) from None
        raise
    return sock


def port_is_free(host: str, port: int) -> bool:
    """True when `host:port` can be bound right now (it is closed again at once)."""
    try:
        bind_port(host, port).close()
    except PortInUse:
        return False
    return True
