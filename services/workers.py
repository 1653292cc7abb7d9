"""`trajgym serve ENV --workers N`: N env service processes on consecutive ports, supervised by this one.

An env service keeps its sessions in its own process, so the workers cannot share one port: worker i
is a full, ordinary `trajgym serve ENV --port PORT+i` (its own session table, limits and `/metrics`),
addressed on its own. With `--register HUB_URL` every worker joins the hub as a replica of its own,
so the collectors' least-loaded sticky placement spreads sessions across them; `--public-url U` gives
worker i the URL U with the port U's port + i (U's explicit port, else 80 for http, 443 for https).

This process (the supervisor) serves nothing itself:

- before starting anything it checks what is cheap to check — the env name, the modes, that the data
  folder exists, that every port PORT..PORT+N-1 is free — so a mistake there is one `error:` line and
  exit 2 with no worker started;
- it starts worker 0 alone and waits until it answers `/readyz` (so a data folder the env cannot load
  is reported once, by that worker, not N times), then the others together;
- each worker is a child in its own session (a terminal's Ctrl-C reaches only the supervisor) with the
  parent-death signal of `services.childproc`: a supervisor killed with SIGKILL still leaves no worker;
- SIGINT, SIGTERM and SIGHUP are forwarded to every worker, which stops gracefully (it finishes its
  requests and leaves the hub); once all have exited the supervisor ends by the same signal, so the exit
  status is the single-worker serve's. A second stop signal kills the workers at once;
- a worker that exits before it was ever ready fails the start: the others are stopped, exit 2 (the
  worker's own `error:` line says why);
- a worker that dies after it was ready is restarted on its port (logged as a warning), after a backoff
  that doubles from 1 s to at most 30 s and starts over once a worker has run for 60 s. The others keep
  serving meanwhile; the sessions the dead worker held are lost (a collector retries those episodes
  elsewhere, the hub marks the replica down until the restarted worker joins again).
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Protocol
from urllib.parse import urlsplit, urlunsplit

import httpx

from services.childproc import die_with_parent
from services.ports import bind_port

log = logging.getLogger("trajgym.workers")

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
MAX_WORKERS = 64


class WorkersError(Exception):
    """A `--workers` setup that cannot work (ports out of range); `trajgym serve` reports it as one `error:` line."""


class WorkerFailed(WorkersError):
    """A worker exited before it was ready; `reported` when it printed its own `error:` line (exit 2)."""

    def __init__(self, message: str, reported: bool = False) -> None:
        super().__init__(message)
        self.reported = reported


class Process(Protocol):
    """What the supervisor needs of a child (a `subprocess.Popen`)."""

    pid: int

    def poll(self) -> int | None: ...

    def send_signal(self, sig: int) -> None: ...


@dataclass(frozen=True)
class WorkerSpec:
    index: int
    port: int
    url: str  # where the supervisor reaches it (/readyz)
    argv: tuple[str, ...]
    public_url: str | None = None


@dataclass(eq=False)
class _Slot:
    spec: WorkerSpec
    proc: Process | None = None
    started_at: float = 0.0
    restart_at: float | None = None  # when a dead worker is due to start again
    backoff: float = 0.0
    starts: int = 0


def worker_public_url(public_url: str, index: int) -> str:
    """`public_url` with its port (explicit, else the scheme's default) plus `index`; the path is kept
    (worker 0's is `public_url` itself)."""
    if index == 0:
        return public_url
    parts = urlsplit(public_url)
    try:
        explicit = parts.port
    except ValueError:
        raise WorkersError(f"--public-url {public_url}: bad port") from None
    if not parts.hostname:
        raise WorkersError(f"--public-url {public_url}: no host")
    base = explicit or (443 if parts.scheme == "https" else 80)
    port = base + index
    if port > 65535:
        raise WorkersError(f"--public-url {public_url}: worker {index} would need port {port} (above 65535)")
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return urlunsplit((parts.scheme, f"{host}:{port}", parts.path, parts.query, parts.fragment))


def check_ports_free(host: str, ports: Sequence[int]) -> None:
    """Raises `PortInUse` naming the first port of `ports` that something else holds."""
    for port in ports:
        bind_port(host, port).close()


def answers_readyz(spec: WorkerSpec) -> bool:
    try:
        return httpx.get(spec.url + "/readyz", timeout=2.0).status_code == 200
    except httpx.HTTPError:
        return False


def spawn_worker(spec: WorkerSpec, env: Mapping[str, str] | None = None) -> subprocess.Popen[bytes]:
    """The worker as a child in its own session that gets SIGTERM when this process dies (Linux)."""
    return subprocess.Popen(list(spec.argv), env=None if env is None else dict(env), stdin=subprocess.DEVNULL,
                            start_new_session=True, preexec_fn=die_with_parent())


def kill_group(proc: Process) -> None:
    """SIGKILL the process group (session) of a worker started by `spawn_worker`: the worker and what it started."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)


def _describe(code: int) -> str:
    if code < 0:
        with contextlib.suppress(ValueError):
            return f"killed by {signal.Signals(-code).name}"
    return f"exit code {code}"


@dataclass
class Supervisor:
    """Runs the workers until `stop(sig)` (the stop signals' handler); see the module docstring."""

    specs: Sequence[WorkerSpec]
    spawn: Callable[[WorkerSpec], Process] = spawn_worker
    ready: Callable[[WorkerSpec], bool] = answers_readyz
    kill: Callable[[Process], None] = kill_group
    backoff: float = 1.0
    max_backoff: float = 30.0
    stable_after: float = 60.0
    poll: float = 0.1
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    on_ready: Callable[[Sequence[WorkerSpec]], None] | None = None
    stop_signal: int | None = field(default=None, init=False)
    forced: bool = field(default=False, init=False)
    restarts: int = field(default=0, init=False)
    slots: list[_Slot] = field(default_factory=list, init=False)

    def __post_init__(self) -> None:
        self.slots = [_Slot(spec, backoff=self.backoff) for spec in self.specs]

    def stop(self, sig: int) -> None:
        """The first call stops the workers gracefully (`sig` is forwarded); a second kills them."""
        if self.stop_signal is None:
            self.stop_signal = sig
        else:
            self.forced = True

    def run(self) -> int | None:
        """Start, supervise, stop; returns the stop signal once every worker has exited.

        Raises `WorkerFailed` (after stopping the others) when a worker exits before it was ready."""
        try:
            if self._start(self.slots[:1]) and self._start(self.slots[1:]):
                if self.on_ready is not None:
                    self.on_ready(self.specs)
                self._supervise()
        finally:
            self._stop_all()
        return self.stop_signal

    def _spawn(self, slot: _Slot) -> None:
        slot.proc = self.spawn(slot.spec)
        slot.started_at = self.clock()
        slot.restart_at = None
        slot.starts += 1

    def _start(self, group: Sequence[_Slot]) -> bool:
        """Start `group` and wait until each answers `/readyz`; False when a stop signal came first."""
        for slot in group:
            self._spawn(slot)
        pending = list(group)
        while pending and self.stop_signal is None:
            for slot in list(pending):
                assert slot.proc is not None
                code = slot.proc.poll()
                if code is not None:
                    spec = slot.spec
                    raise WorkerFailed(f"worker {spec.index} (port {spec.port}) exited before it was ready ({_describe(code)})",
                                       reported=code == 2)
                if self.ready(slot.spec):
                    pending.remove(slot)
            if pending:
                self.sleep(self.poll)
        return self.stop_signal is None

    def _supervise(self) -> None:
        while self.stop_signal is None:
            now = self.clock()
            for slot in self.slots:
                if slot.proc is None:
                    if slot.restart_at is not None and now >= slot.restart_at:
                        self._spawn(slot)
                        log.warning("worker %d restarted on port %d", slot.spec.index, slot.spec.port)
                    continue
                code = slot.proc.poll()
                if code is not None:
                    self._died(slot, code, now)
            self.sleep(self.poll)

    def _died(self, slot: _Slot, code: int, now: float) -> None:
        assert slot.proc is not None
        self.kill(slot.proc)  # anything it left behind in its session
        slot.proc = None
        if now - slot.started_at >= self.stable_after:
            slot.backoff = self.backoff
        delay = slot.backoff
        slot.backoff = min(self.max_backoff, slot.backoff * 2)
        slot.restart_at = now + delay
        self.restarts += 1
        log.warning("worker %d (port %d) died (%s); restarting it in %.1f s", slot.spec.index, slot.spec.port,
                    _describe(code), delay)

    def _stop_all(self) -> None:
        sig = self.stop_signal or signal.SIGTERM
        alive = [s for s in self.slots if s.proc is not None and s.proc.poll() is None]
        for slot in alive:
            assert slot.proc is not None
            with contextlib.suppress(ProcessLookupError):
                slot.proc.send_signal(sig)
        killed = False
        while any(s.proc is not None and s.proc.poll() is None for s in alive):
            if self.forced and not killed:
                for slot in alive:
                    assert slot.proc is not None
                    self.kill(slot.proc)
                killed = True
            self.sleep(self.poll)
        for slot in self.slots:
            if slot.proc is not None:
                self.kill(slot.proc)


@contextlib.contextmanager
def _forward_signals(supervisor: Supervisor) -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handle(sig: int, frame: FrameType | None) -> None:
        supervisor.stop(sig)

    previous = {sig: signal.signal(sig, handle) for sig in STOP_SIGNALS}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _announce(env_name: str, specs: Sequence[WorkerSpec]) -> None:
    lines = [f"{env_name}: {len(specs)} workers"]
    for spec in specs:
        public = f" (registered as {spec.public_url})" if spec.public_url and spec.public_url != spec.url else ""
        lines.append(f"  worker {spec.index}: {spec.url}{public}")
    print("\n".join(lines), flush=True)


def serve_workers(env: str, workers: int, command: Callable[[int, str | None], Sequence[str]], *,
                  host: str = "127.0.0.1", port: int = 8000, data_dir: Path | None = None,
                  modes: Mapping[str, str] | None = None, public_url: str | None = None,
                  registered: bool = False, child_env: Mapping[str, str] | None = None,
                  log_level: str = "warning") -> None:
    """Serve `env` with `workers` processes on ports `port`..`port+workers-1`; `command(port, public_url)`
    is one worker's command line. Ends by the stop signal that stopped it, like a single-worker serve.

    Raises `UnknownEnv`, `ModeError`, `DataDirError`, `PortInUse`, `WorkersError` (ports out of range)
    before anything starts; `WorkerFailed` when a worker fails to start."""
    from envs.base import DataDir
    from envs.registry import load_class
    from services.hub.registrar import default_public_url, local_url

    logging.basicConfig(level=getattr(logging, log_level.upper(), logging.WARNING))
    logging.getLogger("httpx").setLevel(logging.WARNING)  # not a line per /readyz poll
    if not 2 <= workers <= MAX_WORKERS:
        raise WorkersError(f"--workers must be between 2 and {MAX_WORKERS} here, got {workers}")
    if not 1 <= port or port + workers - 1 > 65535:
        raise WorkersError(f"--workers {workers} needs ports {port}..{port + workers - 1}: give a --port between 1 and "
                         f"{65536 - workers}")
    env_cls = load_class(env)
    env_cls.resolve_modes(modes)
    if data_dir is not None:
        DataDir(data_dir)
    ports = [port + i for i in range(workers)]
    specs = []
    for i, p in enumerate(ports):
        own_url = worker_public_url(public_url, i) if public_url else None
        shown = own_url or (default_public_url(host, p) if registered else None)
        specs.append(WorkerSpec(i, p, local_url(host, p), tuple(command(p, own_url)), shown))
    check_ports_free(host, ports)
    env_vars = dict(os.environ if child_env is None else child_env)
    supervisor = Supervisor(specs, spawn=lambda spec: spawn_worker(spec, env_vars),
                            on_ready=lambda s: _announce(env_cls.name, s))
    log.info("starting %d workers of %s on ports %d..%d", workers, env_cls.name, ports[0], ports[-1])
    with _forward_signals(supervisor):
        stopped_by = supervisor.run()
    if stopped_by is not None:  # end by the signal that stopped us, now that every worker is down
        signal.raise_signal(stopped_by)

