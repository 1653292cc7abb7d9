"""CPU priority of SQL work that runs long, in two levels, and turns among the longest.

A statement that has used `SqlLimits.low_priority_after_s` of CPU (its process's CPU time, read from
/proc, so that a statement merely slowed by load is not demoted) runs at nice 10 (`LOW`) for the rest
of its session; after `idle_priority_after_s` of CPU, with `SCHED_IDLE` (`IDLE`: only when nothing
else wants the CPU; nice 19 where that class is missing). Even so, many CPU-bound processes slow the
others' steps (caches and cores are shared), so SQLite statements at `IDLE` also take turns
(`PENALTY_BOX`). Linux-specific parts fall back quietly elsewhere.
"""

from __future__ import annotations

import os
import signal
import threading
from typing import Protocol

_CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


class Signalable(Protocol):
    def signal(self, sig: int) -> None: ...


def cpu_seconds(pid: int) -> float | None:
    """CPU seconds thread `pid` has run (Linux /proc: schedstat in ns, else stat in clock ticks), None where unknown."""
    try:
        with open(f"/proc/{pid}/schedstat", "rb") as fh:
            return int(fh.read().split()[0]) / 1e9
    except (OSError, ValueError, IndexError):
        pass
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            fields = fh.read().rsplit(b")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS
    except (OSError, ValueError, IndexError):
        return None


LOW = 1
IDLE = 2


def lower(pid: int, level: int) -> bool:
    """Lower thread `pid` to `level` (`LOW`: nice 10; `IDLE`: SCHED_IDLE, else nice 19). Never raises it."""
    try:
        if level >= IDLE and hasattr(os, "sched_setscheduler") and hasattr(os, "SCHED_IDLE"):
            os.sched_setscheduler(pid, os.SCHED_IDLE, os.sched_param(0))
        else:
            nice = 10 if level == LOW else 19
            if os.getpriority(os.PRIO_PROCESS, pid) < nice:
                os.setpriority(os.PRIO_PROCESS, pid, nice)
        return True
    except OSError:
        return False


def demote(pid: int) -> bool:
    """The lowest level (`IDLE`) for thread `pid`."""
    return lower(pid, IDLE)


class PenaltyBox:
    """Statements that got the lowest priority take turns: at most `slots` of them run at a time, for `slice_s`
    each, the others are stopped (SIGSTOP) meanwhile. Even at the lowest priority, many CPU-bound statements
    slow the other sessions' steps (shared caches and cores); in turns, they cost about what one does.
    Their time limits keep running; a kill works on a stopped worker."""

    def __init__(self, slots: int, slice_s: float = 0.05) -> None:
        self.slots = slots
        self.slice_s = slice_s
        self._members: list[Signalable] = []
        self._running: set[int] = set()  # ids of members let run
        self._turn = 0
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None

    def enter(self, worker: Signalable) -> None:
        with self._cond:
            self._members.append(worker)
            self._running.add(id(worker))  # runs until the next turn is given
            if self._thread is None:
                self._thread = threading.Thread(target=self._rotate, name="sql-penalty-box", daemon=True)
                self._thread.start()
            self._cond.notify()

    def leave(self, worker: Signalable) -> None:
        with self._cond:
            if worker in self._members:
                self._members.remove(worker)
                self._running.discard(id(worker))
                worker.signal(signal.SIGCONT)

    def _rotate(self) -> None:
        with self._cond:
            while True:
                if len(self._members) <= self.slots:
                    for w in self._members:
                        if id(w) not in self._running:
                            self._running.add(id(w))
                            w.signal(signal.SIGCONT)
                    self._cond.wait()
                    continue
                self._turn = (self._turn + self.slots) % len(self._members)
                chosen = {id(w) for w in (self._members * 2)[self._turn:self._turn + self.slots]}
                for w in self._members:
                    if id(w) in chosen and id(w) not in self._running:
                        w.signal(signal.SIGCONT)
                    elif id(w) not in chosen and id(w) in self._running:
                        w.signal(signal.SIGSTOP)
                self._running = chosen
                self._cond.wait(self.slice_s)


PENALTY_BOX = PenaltyBox(slots=max(1, (os.cpu_count() or 2) // 2))
