"""The worker process side of `envs.sql.worker`: the zygote that forks workers, and a worker's loop.

``python -m envs.sql.worker_main FD`` is the zygote: it imports the SQL modules once, then forks one
worker per request on its control socket FD and exits when the service closes it. A worker serves
one session at a time (open, execute, snapshot, finish, reset) on the socket it was given; it caps its
own memory (SQLite's heap limit, set by the session, and an address-space soft limit) and dies with
the zygote (Linux parent-death signal) or exits when the service hangs up.
"""

from __future__ import annotations

import gc
import os
import pickle
import signal
import socket
import sys
from multiprocessing.connection import Connection
from typing import Any

from envs.sql.limits import ExecResult, SqlLimitError, SqlLimits

_FIT_RSS = 96 * 2**20  # a worker that keeps more memory than this after its session is not reused


class RequestError(RuntimeError):
    pass


def _limit_address_space(extra_bytes: int) -> None:
    """Cap this process's address space at its current size + `extra_bytes` (Linux; a no-op elsewhere)."""
    try:
        import resource

        with open("/proc/self/statm") as fh:
            current = int(fh.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
        hard = resource.getrlimit(resource.RLIMIT_AS)[1]
        cap = current + extra_bytes if hard == resource.RLIM_INFINITY else min(current + extra_bytes, hard)
        resource.setrlimit(resource.RLIMIT_AS, (cap, hard))  # the soft limit: lifted again for the next session
    except (OSError, ValueError, ImportError):
        pass


def _lift_address_space_limit() -> None:
    try:
        import resource

        hard = resource.getrlimit(resource.RLIMIT_AS)[1]
        resource.setrlimit(resource.RLIMIT_AS, (hard, hard))
    except (OSError, ValueError, ImportError):
        pass


def _open(request: tuple[Any, ...]) -> tuple[Any, Any]:
    kind = request[0]
    if kind == "open_sqlite":
        from envs.sql.engine import SqliteSession

        template, limits_json = request[1], request[2]
        limits = SqlLimits.model_validate_json(limits_json)
        session: Any = SqliteSession(template, limits, heap_limit=True)
        _limit_address_space(2 * (len(template) + limits.max_memory_bytes) + 128 * 2**20)
        return session, None
    if kind == "open_postgres":
        from envs.sql.pg_session import PgSession

        params = dict(request[1])
        limits = SqlLimits.model_validate_json(params.pop("limits"))
        session = PgSession(limits=limits, **params)
        _limit_address_space(2 * limits.max_memory_bytes + 128 * 2**20)
        return session, {"backend_pid": session.backend_pid}
    raise RequestError(f"unknown request {kind!r}")


def _answer(session: Any, request: tuple[Any, ...]) -> tuple[str, Any]:
    op = request[0]
    if op == "execute":
        r: ExecResult = session.execute(request[1])
        return "result", {"columns": r.columns, "rows": r.rows, "rowcount": r.rowcount, "truncated": r.truncated,
                          "error": r.error, "statements": r.statements, "fatal": r.fatal}
    if op == "snapshot":
        try:
            return "snapshot", session.snapshot()
        except SqlLimitError as err:
            return "limit", str(err)
    if op == "finish":
        session.finish_transaction()
        return "ok", None
    return "error", f"unknown request {op!r}"


def _reset(session: Any) -> tuple[str, Any]:
    """End the session; give memory back to the system; ("ok", rss) when this worker is fit for another session."""
    session.close()
    _lift_address_space_limit()
    gc.collect()
    try:
        import ctypes

        ctypes.CDLL(None).malloc_trim(0)
        with open("/proc/self/statm") as fh:
            rss = int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, AttributeError, ValueError):
        rss = 0
    return ("ok", rss) if rss < _FIT_RSS else ("retire", rss)


def serve(conn: Connection) -> None:
    """A worker's loop: an open request starts a session, the others use it, a reset ends it; ends when the
    service hangs up."""
    session: Any = None
    while True:
        try:
            request = conn.recv()
        except (EOFError, OSError):
            break
        try:
            if request[0] == "reset":
                reply: tuple[str, Any] = _reset(session) if session is not None else ("ok", 0)
                session = None
            elif session is None:
                session, info = _open(request)
                reply = ("ok", info)
            else:
                reply = _answer(session, request)
        except MemoryError:
            reply = ("error", "out of memory")
        except Exception as err:  # noqa: BLE001 (every failure goes back to the service as a message)
            reply = ("error", f"{type(err).__name__}: {err}")
        try:
            conn.send(reply)
        except (OSError, MemoryError, pickle.PicklingError):
            break
    if session is not None:
        try:
            session.close()
        except Exception:  # noqa: BLE001
            pass


def _child_setup() -> None:
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG: die with the zygote
        if os.getppid() == 1:
            os._exit(0)
        libc.mallopt(-8, 1)  # M_ARENA_MAX = 1: threads do not reserve arenas against the address-space cap
    except (OSError, AttributeError):
        pass


def zygote_main(ctl_fd: int) -> None:
    """Fork one worker per request on the control socket; exit when the service closes it."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the service shuts its workers down itself
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # exited workers are reaped by the kernel
    import ctypes  # noqa: F401  (imported once, shared by every fork)
    import resource  # noqa: F401

    import envs.sql.engine  # noqa: F401

    try:
        import envs.sql.pg_session  # noqa: F401
    except ImportError:  # psycopg is optional
        pass
    gc.collect()
    gc.freeze()  # forks then copy fewer pages: the collector no longer touches the zygote's objects
    ctl = socket.socket(fileno=ctl_fd)
    while True:
        try:
            msg, fds, _, _ = socket.recv_fds(ctl, 16, 1)
        except OSError:
            break
        if not msg:
            break
        if not fds:
            continue
        pid = os.fork()
        if pid == 0:
            ctl.close()
            _child_setup()
            serve(Connection(fds[0]))
            os._exit(0)
        os.close(fds[0])
        try:
            ctl.sendall(pid.to_bytes(8, "little"))
        except OSError:
            break


if __name__ == "__main__":
    zygote_main(int(sys.argv[1]))
