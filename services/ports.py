"""Loopback port helpers shared by the process launchers (quickstart, model server, tests, benchmarks),
and the listening socket of a service (`bind_port`: a taken port is a `PortInUse` naming it)."""

from __future__ import annotations

import errno
import socket


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
