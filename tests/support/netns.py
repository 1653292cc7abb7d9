"""Separate network hosts on one Linux machine: network namespaces joined by veth pairs to a bridge.

`Network(prefix, ["A", "B", ...])` makes, with iproute2 (`ip netns`, `ip link`):

    namespace {prefix}-sw      the "switch": a bridge `br0`, one veth port per host (`v<host>`)
    namespace {prefix}-<host>  one host: `lo` and `eth0` (the other end of its veth) with
                               10.231.0.<2+i>/24 — private addresses that exist only in these namespaces

Nothing is added to the root namespace: the bridge lives in the switch namespace and each veth pair is
created with both ends already in their namespaces. `spawn(host, argv)` runs a process on a host
(`ip netns exec`, plus `unshare --uts` so each host has its own hostname, as separate machines do — the
collector's worker ids carry it), in its own process group. `call(host, fn)` runs a Python function in
a thread that entered the host's network namespace (setns), so the test process itself can reach the
hosts (HTTP, PostgreSQL) without a route from the root namespace. `cut(host)` / `restore(host)` set the
host's link down / up. `destroy()` kills every process left in the namespaces and deletes them;
`create()` first removes leftovers of a crashed earlier run (namespaces with the same prefix), under an
exclusive lock file, so two sessions on one machine never tear down each other's hosts.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, TypeVar

T = TypeVar("T")
CLONE_NEWNET = 0x40000000
LOCK_DIR = Path("/run/lock") if Path("/run/lock").is_dir() else Path("/tmp")


class HostsUnavailable(RuntimeError):
    """Network namespaces cannot be made here (the reason is the message)."""


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30)
    if check and done.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {done.stderr.strip() or done.returncode}")
    return done


def why_unavailable() -> str | None:
    """None when namespaces, veth pairs and bridges can be made here; else the reason (for a skip)."""
    if os.geteuid() != 0:
        return "needs root to make network namespaces (ip netns)"
    for tool in ("ip", "unshare"):
        if shutil.which(tool) is None:
            return f"`{tool}` is not installed (Debian: iproute2 / util-linux)"
    if not hasattr(ctypes.CDLL(None), "setns"):
        return "libc has no setns()"
    probe = f"tgprobe{os.getpid()}"
    made = _ip("netns", "add", probe, check=False)
    if made.returncode != 0:
        return f"cannot make a network namespace: {made.stderr.strip()}"
    try:
        bridge = _ip("-n", probe, "link", "add", "br0", "type", "bridge", check=False)
        if bridge.returncode != 0:
            return f"cannot make a bridge in a namespace: {bridge.stderr.strip()}"
        veth = _ip("-n", probe, "link", "add", "p0", "type", "veth", "peer", "name", "p1", check=False)
        if veth.returncode != 0:
            return f"cannot make a veth pair in a namespace: {veth.stderr.strip()}"
    finally:
        _ip("netns", "del", probe, check=False)
    return None


def _enter_netns(path: str) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(path, os.O_RDONLY)
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"setns({path}): {os.strerror(err)}")
    finally:
        os.close(fd)


@dataclass
class Host:
    name: str
    ns: str
    addr: str
    hostname: str


class Proc:
    """A process on a host, in its own process group; its output goes to `log`."""

    def __init__(self, name: str, popen: subprocess.Popen[bytes], log: Path, log_file: IO[bytes]) -> None:
        self.name = name
        self.popen = popen
        self.log = log
        self._log_file = log_file

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def signal(self, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, sig)

    def kill(self) -> None:
        """SIGKILL the whole process group and reap it."""
        self.signal(signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(timeout=10)
        self._log_file.close()

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM, then SIGKILL after `timeout`; returns the exit code."""
        self.signal(signal.SIGTERM)
        try:
            self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.signal(signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.popen.wait(timeout=10)
        self._log_file.close()
        return self.popen.returncode

    def wait(self, timeout: float) -> int:
        return self.popen.wait(timeout=timeout)

    def tail(self, lines: int = 30) -> str:
        try:
            text = self.log.read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return f"--- {self.name} ({self.log}) ---\n" + "\n".join(text[-lines:])


class Network:
    def __init__(self, prefix: str, hosts: Sequence[str], *, subnet: str = "10.231.0", log_dir: Path) -> None:
        if not prefix.isalnum() or len(prefix) > 8:
            raise ValueError("the prefix is at most 8 letters or digits")
        self.prefix = prefix
        self.subnet = subnet
        self.switch = f"{prefix}-sw"
        self.hosts = {name: Host(name, f"{prefix}-{name}", f"{subnet}.{2 + i}", f"{prefix}-{name.lower()}")
                      for i, name in enumerate(hosts)}
        self.log_dir = log_dir
        self.procs: list[Proc] = []
        self._callers: dict[str, ThreadPoolExecutor] = {}
        self._lock: IO[str] | None = None

    # ----- lifecycle ---------------------------------------------------------------------
    def create(self, lock_timeout: float = 600.0) -> None:
        self._take_lock(lock_timeout)
        try:
            self.remove_leftovers()
            _ip("netns", "add", self.switch)
            _ip("-n", self.switch, "link", "set", "lo", "up")
            _ip("-n", self.switch, "link", "add", "br0", "type", "bridge")
            _ip("-n", self.switch, "link", "set", "br0", "up")
            for host in self.hosts.values():
                port = f"v{host.name}"
                _ip("netns", "add", host.ns)
                _ip("link", "add", "eth0", "netns", host.ns, "type", "veth", "peer", "name", port, "netns", self.switch)
                _ip("-n", self.switch, "link", "set", port, "master", "br0")
                _ip("-n", self.switch, "link", "set", port, "up")
                _ip("-n", host.ns, "link", "set", "lo", "up")
                _ip("-n", host.ns, "addr", "add", f"{host.addr}/24", "dev", "eth0")
                _ip("-n", host.ns, "link", "set", "eth0", "up")
            self.log_dir.mkdir(parents=True, exist_ok=True)
        except BaseException:
            self.destroy()
            raise

    def _take_lock(self, timeout: float) -> None:
        path = LOCK_DIR / f"trajgym-{self.prefix}.lock"
        fh = path.open("w")
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    fh.close()
                    raise HostsUnavailable(f"another session holds {path} (multi-host hosts of prefix {self.prefix!r})") from None
                time.sleep(0.5)
        self._lock = fh

    def namespaces(self) -> list[str]:
        """Namespaces of this prefix that exist now (ours, or leftovers of a crashed run)."""
        out = _ip("netns", "list", check=False).stdout
        names = [line.split()[0] for line in out.splitlines() if line.strip()]
        return [n for n in names if n.startswith(self.prefix + "-")]

    def _kill_in(self, ns: str) -> None:
        for _ in range(20):
            pids = [int(p) for p in _ip("netns", "pids", ns, check=False).stdout.split()]
            if not pids:
                return
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.1)

    def remove_leftovers(self) -> None:
        for ns in self.namespaces():
            self._kill_in(ns)
            _ip("netns", "del", ns, check=False)

    def destroy(self) -> None:
        """Kill every process started here and every process left in the namespaces, delete them."""
        for proc in self.procs:
            proc.kill()
        for executor in self._callers.values():
            executor.shutdown(wait=False, cancel_futures=True)
        self._callers.clear()
        for ns in self.namespaces():
            self._kill_in(ns)
            _ip("netns", "del", ns, check=False)
        if self._lock is not None:
            self._lock.close()
            self._lock = None

    # ----- hosts -------------------------------------------------------------------------
    def addr(self, host: str) -> str:
        return self.hosts[host].addr

    def cut(self, host: str) -> None:
        """The host's link goes down: its peers' packets are dropped (no reset), as when a cable is pulled."""
        _ip("-n", self.hosts[host].ns, "link", "set", "eth0", "down")

    def restore(self, host: str) -> None:
        """The link comes back up (the kernel restores the subnet route of the address it kept)."""
        _ip("-n", self.hosts[host].ns, "link", "set", "eth0", "up")

    def exec_argv(self, host: str, argv: Sequence[str]) -> list[str]:
        h = self.hosts[host]
        return ["ip", "netns", "exec", h.ns, "unshare", "--uts", "--", "sh", "-c", 'hostname "$0" && exec "$@"',
                h.hostname, *argv]

    def run(self, host: str, argv: Sequence[str], timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
        return subprocess.run(self.exec_argv(host, argv), capture_output=True, text=True, timeout=timeout)

    def spawn(self, host: str, name: str, argv: Sequence[str], *, cwd: Path | None = None,
              env: dict[str, str] | None = None) -> Proc:
        log = self.log_dir / f"{name}.log"
        fh = log.open("ab")
        popen = subprocess.Popen(self.exec_argv(host, argv), cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=fh,
                                 stderr=subprocess.STDOUT, start_new_session=True)
        proc = Proc(name, popen, log, fh)
        self.procs.append(proc)
        return proc

    def call(self, host: str, fn: Callable[..., T], *args: Any, timeout: float = 60.0) -> T:
        """Run `fn(*args)` in a thread inside the host's network namespace (sockets it opens live there)."""
        executor = self._callers.get(host)
        if executor is None:
            path = f"/run/netns/{self.hosts[host].ns}"
            executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"netns-{host}",
                                          initializer=_enter_netns, initargs=(path,))
            self._callers[host] = executor
        return executor.submit(fn, *args).result(timeout=timeout)

    def tails(self, lines: int = 30) -> str:
        return "\n".join(p.tail(lines) for p in self.procs)
