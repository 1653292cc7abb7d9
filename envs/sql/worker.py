"""Each session's SQL runs in its own worker process, which the service kills when a statement overruns.

SQLite checks its interrupt flag only between VM instructions, and PostgreSQL its
cancel flag only at interrupt checks: one long instruction (``ltrim`` or ``LIKE``
on long operands, repeated in one row) runs on whatever the time limit says.
So a session's connection lives in a worker process; the worker stops a
statement itself at the time limit (interrupt / cancel), and the service kills
the worker `kill_grace_s` later if it has not answered. A worker also caps its
memory (SQLite's heap limit and an address-space limit), so one session cannot
take the service's memory, and its results reach the service only within the
result budget, decoded by an unpickler that accepts plain data only.

Workers are forked by one zygote process per service (``python -m envs.sql.worker_main``,
started on first use, with the SQL modules imported once; the worker side is in
`envs.sql.worker_main`): a fork and a first session cost a few milliseconds, a
worker about 6 MiB of its own memory. A worker whose session ended cleanly is
reset and kept for the next session (`IDLE`). Statements that use much CPU get the
lowest priority and take turns (`envs.sql.priority`). The zygote exits when the
service does; its workers are killed with it (Linux parent-death signal) or exit
when their socket closes.
"""

from __future__ import annotations

import atexit
import io
import os
import pickle
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from envs.sql.limits import (
    ExecResult,
    Snapshot,
    SqlLimitError,
    SqlLimits,
    killed_message,
)
from envs.sql.priority import IDLE as IDLE_LEVEL
from envs.sql.priority import PENALTY_BOX, cpu_seconds, lower

ROOT = Path(__file__).resolve().parents[2]
_SPAWN = b"s"
_CPU_CHECK_S = 0.005  # first look at a running statement's CPU use; then at doubling intervals, up to:
_CPU_CHECK_MAX_S = 0.08


class WorkerError(RuntimeError):
    """The worker could not be started or answered with an error."""


class WorkerGone(WorkerError):
    """The worker was killed (it overran `kill_after_s`) or died (e.g. over its memory limit)."""

    def __init__(self, message: str, overran: bool) -> None:
        super().__init__(message)
        self.overran = overran


# ----- service side: the zygote and one session's worker --------------------------------------------
class Zygote:
    """The process that forks workers. Thread-safe."""

    def __init__(self) -> None:
        ours, theirs = socket.socketpair()
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
        try:
            self.proc = subprocess.Popen([sys.executable, "-m", "envs.sql.worker_main", str(theirs.fileno())],
                                         pass_fds=(theirs.fileno(),), stdin=subprocess.DEVNULL, env=env, cwd=ROOT)
        finally:
            theirs.close()
        self._ctl = ours
        self._lock = threading.Lock()

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def spawn(self) -> tuple[int, Connection]:
        """A new worker: (pid, connection to it)."""
        ours, theirs = socket.socketpair()
        try:
            with self._lock:
                socket.send_fds(self._ctl, [_SPAWN], [theirs.fileno()])
                raw = b""
                while len(raw) < 8:
                    part = self._ctl.recv(8 - len(raw))
                    if not part:
                        raise WorkerError("the SQL worker zygote exited")
                    raw += part
        except (OSError, WorkerError) as err:
            ours.close()
            raise WorkerError(f"cannot start an SQL worker: {err}") from err
        finally:
            theirs.close()
        return int.from_bytes(raw, "little"), Connection(ours.detach())

    def close(self) -> None:
        self._ctl.close()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()


_zygote: Zygote | None = None
_zygote_lock = threading.Lock()


def zygote() -> Zygote:
    """The service's zygote, started (again) when needed."""
    global _zygote
    with _zygote_lock:
        if _zygote is None or not _zygote.alive:
            _zygote = Zygote()
        return _zygote


@atexit.register
def _close_zygote() -> None:
    with _zygote_lock:
        if _zygote is not None:
            _zygote.close()


class _PlainData(pickle.Unpickler):
    """Worker replies are plain data (tuples, lists, dicts, str, bytes, numbers): no class may be loaded."""

    def find_class(self, module: str, name: str) -> Any:
        raise pickle.UnpicklingError(f"refused {module}.{name} in a worker reply")


def _pidfd(pid: int) -> int | None:
    """A pidfd keeps the kill aimed at this worker even after its pid is reused (Linux >= 5.3)."""
    try:
        return os.pidfd_open(pid) if hasattr(os, "pidfd_open") else None
    except OSError:
        return None


class Worker:
    """One worker process: its pid, a pidfd where the system has them, the connection to it."""

    def __init__(self, pid: int, conn: Connection) -> None:
        self.pid = pid
        self.conn = conn
        self.pidfd = _pidfd(pid)
        self.sessions = 0  # sessions it has served
        self.demoted = False

    def demote(self, level: int) -> None:
        """Lower the priority of its main thread, which runs the statements (`envs.sql.priority.lower`)."""
        self.demoted = lower(self.pid, level) or self.demoted

    def promote(self) -> bool:
        """Back to normal priority (allowed only to privileged services): may it serve another session?"""
        if not self.demoted:
            return True
        try:
            if hasattr(os, "sched_setscheduler"):
                os.sched_setscheduler(self.pid, os.SCHED_OTHER, os.sched_param(0))
            os.setpriority(os.PRIO_PROCESS, self.pid, 0)
        except OSError:
            return False
        self.demoted = False
        return True

    def kill(self) -> None:
        self.signal(signal.SIGKILL)

    def signal(self, sig: int) -> None:
        try:
            if self.pidfd is not None:
                signal.pidfd_send_signal(self.pidfd, sig)
            else:
                os.kill(self.pid, sig)
        except OSError:
            pass

    def exited(self, timeout: float) -> bool:
        if self.pidfd is None:
            return False
        ready, _, _ = select.select([self.pidfd], [], [], timeout)
        return bool(ready)

    def release(self) -> None:
        self.conn.close()
        if self.pidfd is not None:
            os.close(self.pidfd)
            self.pidfd = None


class _Idle:
    """Workers whose session ended cleanly, reset and kept for the next session (a fork and the first touches
    of the zygote's memory cost milliseconds; a reused worker opens a session in a fraction of one)."""

    def __init__(self, keep: int = 64, max_sessions: int = 200) -> None:
        self.keep = keep
        self.max_sessions = max_sessions
        self._workers: list[Worker] = []
        self._lock = threading.Lock()

    def take(self) -> Worker | None:
        with self._lock:
            return self._workers.pop() if self._workers else None

    def give(self, worker: Worker) -> bool:
        if not worker.promote():
            return False
        with self._lock:
            if len(self._workers) < self.keep and worker.sessions < self.max_sessions:
                self._workers.append(worker)
                return True
        return False

    def clear(self) -> None:
        with self._lock:
            workers, self._workers = self._workers, []
        for w in workers:
            w.kill()
            w.release()


IDLE = _Idle()
atexit.register(IDLE.clear)


class WorkerDb:
    """Service side of one session's worker; a `SessionDb`. One request at a time."""

    def __init__(self, limits: SqlLimits, open_request: tuple[Any, ...], open_timeout: float = 60.0) -> None:
        self.limits = limits
        self._lock = threading.Lock()
        self._max_reply = max(limits.max_result_bytes, limits.max_snapshot_bytes) * 2 + 16 * 2**20
        self._overran = False
        self._boxed = False
        reused = IDLE.take()
        self._worker = reused or Worker(*zygote().spawn())
        self._gone = False
        try:
            self.info: Any = self._call(open_request, open_timeout)
        except WorkerGone:
            if reused is None:
                raise
            self._worker = Worker(*zygote().spawn())  # the idle worker had died meanwhile: once more, fresh
            self._gone = False
            self.info = self._call(open_request, open_timeout)
        except WorkerError:
            self.kill()
            raise
        self._worker.sessions += 1

    @property
    def pid(self) -> int:
        return self._worker.pid

    @property
    def closed(self) -> bool:
        return self._gone

    # ----- requests ---------------------------------------------------------------------------
    def _call(self, request: tuple[Any, ...], timeout: float, cpu_levels: tuple[float, ...] = ()) -> Any:
        """Send `request`; the worker's payload, or WorkerGone (killed after `timeout` s / died) / WorkerError.
        Once the work has used `cpu_levels[i]` s of CPU (`work_cpu_seconds`; of wall time where that is
        unknown), `on_slow(i + 1)` lowers its priority to that level."""
        with self._lock:
            if self._gone:
                raise WorkerGone("the database of this session is closed", overran=False)
            conn = self._worker.conn
            started = time.monotonic()
            deadline = started + timeout
            cpu0 = self.work_cpu_seconds() if cpu_levels else None
            level = 0
            check = _CPU_CHECK_S
            self._boxed = False
            try:
                conn.send(request)
                while True:
                    left = deadline - time.monotonic()
                    watching = level < len(cpu_levels)
                    if conn.poll(max(0.0, min(left, check) if watching else left)):
                        break
                    check = min(2 * check, _CPU_CHECK_MAX_S)
                    if time.monotonic() >= deadline:
                        self._kill_locked()
                        self._overran = True
                        raise WorkerGone(f"the worker did not answer within {timeout:g} s", overran=True)
                    if watching:
                        cpu = self.work_cpu_seconds()
                        used = cpu - cpu0 if cpu is not None and cpu0 is not None else time.monotonic() - started
                        while level < len(cpu_levels) and used >= cpu_levels[level]:
                            level += 1
                            self.on_slow(level)
                reply = _PlainData(io.BytesIO(conn.recv_bytes(self._max_reply))).load()
            except (EOFError, OSError, pickle.UnpicklingError) as err:
                self._kill_locked()
                raise WorkerGone(f"the worker stopped: {type(err).__name__}", overran=False) from err
            finally:
                if self._boxed:
                    PENALTY_BOX.leave(self._worker)
                    self._boxed = False
        status, payload = reply
        if status == "error":
            raise WorkerError(str(payload))
        if status == "limit":
            raise SqlLimitError(str(payload))
        return payload

    def execute(self, sql: str) -> ExecResult:
        try:
            payload = self._call(("execute", sql), self.limits.kill_after_s, self._cpu_levels)
        except WorkerGone as gone:
            return ExecResult(error=self._gone_message(gone), fatal=True)
        except WorkerError as err:
            return ExecResult(error=str(err))
        try:
            return ExecResult(**payload)
        except TypeError:  # not what a worker sends: treat it as a worker gone wrong
            self.kill()
            return ExecResult(error="query stopped: this session's database worker answered nonsense; the episode ends",
                              fatal=True)

    def snapshot(self) -> Snapshot:
        try:
            return self._call(("snapshot",), self.limits.kill_after_s, self._cpu_levels)  # type: ignore[no-any-return]
        except WorkerGone as gone:
            raise SqlLimitError(self._gone_message(gone, "reading your tables for grading")) from None
        except SqlLimitError:
            raise
        except WorkerError as err:
            raise SqlLimitError(f"grading stopped: {err}") from None

    def finish_transaction(self) -> None:
        try:
            self._call(("finish",), self.limits.kill_after_s)
        except WorkerError:
            pass  # the snapshot that follows reports a gone worker

    def work_cpu_seconds(self) -> float | None:
        """CPU seconds the session's work has used so far (its worker's), None where unknown."""
        return cpu_seconds(self._worker.pid)

    @property
    def _cpu_levels(self) -> tuple[float, ...]:
        return (self.limits.low_priority_after_s, max(self.limits.low_priority_after_s, self.limits.idle_priority_after_s))

    def on_slow(self, level: int) -> None:
        """A statement uses much CPU: a lower priority for the rest of the session (the worker is not reused unless
        that can be undone); at the `IDLE` level it also takes turns with the other such statements until it ends."""
        self._worker.demote(level)
        if level >= IDLE_LEVEL and not self._boxed:
            PENALTY_BOX.enter(self._worker)
            self._boxed = True

    @property
    def overran(self) -> bool:
        """Whether the worker was killed in a statement that did not stop at the time limit."""
        return self._overran

    def _gone_message(self, gone: WorkerGone, what: str = "the statement") -> str:
        if gone.overran:
            return killed_message(self.limits, what)
        return (f"query stopped: this session's database worker ended ({gone}; it may have run out of its "
                f"{self.limits.max_memory_bytes / 2**20:g} MiB of memory); the episode ends")

    # ----- end --------------------------------------------------------------------------------
    def kill(self) -> None:
        """Kill the worker now (a request in flight fails at once)."""
        self._worker.kill()
        with self._lock:
            self._kill_locked()

    def close(self) -> None:
        """End the session: its worker closes the database and waits for the next session, or exits."""
        with self._lock:
            if self._gone:
                return
            self._gone = True
            worker = self._worker
            try:
                worker.conn.send(("reset",))
                healthy = worker.conn.poll(2.0) and _PlainData(io.BytesIO(worker.conn.recv_bytes(4096))).load()[0] == "ok"
            except (EOFError, OSError, pickle.UnpicklingError):
                healthy = False
            if healthy and IDLE.give(worker):
                return
            worker.conn.close()  # it exits on the hang-up; killed if it has not within a second
            if not worker.exited(1.0):
                worker.kill()
            worker.release()

    def _kill_locked(self) -> None:
        if self._gone:
            return
        self._gone = True
        self._worker.kill()
        self._worker.release()
