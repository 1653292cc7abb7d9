"""The quickstart's child processes and its stop signals.

`Services` starts the hub and the env services as child processes and stops them in dependency
order: the env services first (they leave the hub, which is still up to hear it), then the hub. A
tier is asked to stop with SIGTERM and killed once its grace period is over. Each child runs in its
own session, so a terminal's Ctrl-C or SIGHUP reaches only the quickstart, which does the ordering;
each also has the parent-death signal of `services.childproc` (Linux's PR_SET_PDEATHSIG), so a
quickstart killed with SIGKILL still leaves no process behind: its children get SIGTERM from the
kernel and shut down by themselves.

`StopSignals` treats SIGINT, SIGTERM and SIGHUP alike. The first one raises `Interrupted` in the main
thread (so the `with` blocks unwind and stop the children in order) — or, while a collection runs,
asks the collector to stop (it releases its in-flight episodes) and `Interrupted` is raised once it
has returned. A signal that comes while the children are being stopped, or a second one, kills the
children at once.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

from cli.errors import CommandError
from services.childproc import die_with_parent

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class Interrupted(BaseException):
    """A stop signal arrived (a BaseException, like KeyboardInterrupt: `except Exception` lets it through)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


class StopSignals:
    """`with StopSignals(on_force=...) as signals:` — see the module docstring."""

    def __init__(self, on_force: Callable[[], None] | None = None) -> None:
        self.received: int | None = None
        self.stopping = False
        self.on_force = on_force
        self._redirect: Callable[[], None] | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():
            self._previous = {sig: signal.signal(sig, self._handle) for sig in STOP_SIGNALS}
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        first = self.received is None
        if first:
            self.received = signum
        if self.stopping or not first:
            if self.on_force is not None:
                self.on_force()
            if not self.stopping:  # a second signal before the stop began: quit now
                os._exit(128 + signum)
            return
        if self._redirect is not None:
            self._redirect()
            return
        raise Interrupted(signum)

    @contextlib.contextmanager
    def redirected(self, ask_to_stop: Callable[[], None]) -> Iterator[None]:
        """While inside: the first signal calls `ask_to_stop()` instead of raising (then `raise_if_received`)."""
        self._redirect = ask_to_stop
        try:
            yield
        finally:
            self._redirect = None

    def raise_if_received(self) -> None:
        if self.received is not None:
            raise Interrupted(self.received)


@dataclass
class Child:
    name: str
    tier: int  # stopped from the highest tier down: a service before what it depends on
    proc: subprocess.Popen[bytes]
    log: Path


@dataclass
class Services:
    """Child processes (the hub, the env services) with their logs, stopped together in dependency order."""

    workdir: Path
    grace: float = 6.0  # seconds a tier has to exit after SIGTERM before it is killed
    children: list[Child] = field(default_factory=list)
    signals: StopSignals | None = None

    def start(self, name: str, *args: str, tier: int) -> subprocess.Popen[bytes]:
        """`trajgym ARGS...` as a child; `tier` 0 for the hub, 1 for what registers with it."""
        logs = self.workdir / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        path = logs / f"{name}.log"
        with open(path, "wb") as log:
            proc = subprocess.Popen([sys.executable, "-m", "cli.main", *args], stdout=log, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, start_new_session=True, preexec_fn=die_with_parent())
        self.children.append(Child(name, tier, proc, path))
        return proc

    def check_alive(self) -> None:
        for child in self.children:
            if child.proc.poll() is not None:
                raise CommandError(f"{child.name} exited with code {child.proc.returncode}: {last_line(child.log)} "
                                   f"(full log: {child.log})")

    def _signal(self, child: Child, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(child.proc.pid, sig)  # its session's process group: the child and anything it started

    def kill(self) -> None:
        """SIGKILL every child now (a second stop signal)."""
        for child in self.children:
            self._signal(child, signal.SIGKILL)

    def stop(self) -> None:
        """Stop the children tier by tier, highest first; each tier gets `grace` s after SIGTERM."""
        if self.signals is not None:
            self.signals.stopping = True
        for tier in sorted({c.tier for c in self.children}, reverse=True):
            group = [c for c in self.children if c.tier == tier]
            for child in group:
                if child.proc.poll() is None:
                    self._signal(child, signal.SIGTERM)
            deadline = time.monotonic() + self.grace
            for child in group:
                try:
                    child.proc.wait(timeout=max(0.0, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    self._signal(child, signal.SIGKILL)
                    child.proc.wait()
            for child in group:  # anything a child left in its process group
                self._signal(child, signal.SIGKILL)


def last_line(path: Path) -> str:
    """The last non-empty line of a log (the `error:` line of a child that failed), or a placeholder."""
    try:
        lines = [line.strip() for line in path.read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return "(no log)"
    return lines[-1][:300] if lines else "(empty log)"
