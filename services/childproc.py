"""Child processes that end with their parent, even when the parent is killed with SIGKILL.

The mechanism is Linux's parent-death signal: `die_with_parent()` returns a `preexec_fn` for
`subprocess.Popen` that calls `prctl(PR_SET_PDEATHSIG, SIGTERM)` in the child between fork and
exec, so the kernel sends the child SIGTERM the moment its parent dies, for whatever reason. SIGTERM
(not SIGKILL) lets the child shut down as it would when stopped normally (an env service leaves its
hub, vLLM stops its engine). Two details make this safe:

- the libc function is looked up in the parent, before the fork: the child does nothing but that one
  foreign call and a `getppid()`, no import and no lock, which is what makes a `preexec_fn` tolerable
  in a parent that has other threads (a progress spinner);
- the signal fires when the *thread* that forked the child ends, so children must be started from a
  thread that lives as long as the parent (the quickstart starts them from its main thread).

Elsewhere (macOS, Windows) there is no such signal: `die_with_parent()` returns None and a killed
parent leaves its children running (a parent that stops normally still stops them).
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
from collections.abc import Callable

PR_SET_PDEATHSIG = 1


def die_with_parent(sig: int = signal.SIGTERM) -> Callable[[], None] | None:
    """A `preexec_fn` that makes the child receive `sig` when this process dies (Linux), else None."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
    prctl.restype = ctypes.c_int
    parent = os.getpid()
    signum = int(sig)

    def preexec() -> None:
        prctl(PR_SET_PDEATHSIG, signum, 0, 0, 0)
        if os.getppid() != parent:  # the parent died before the request took effect
            os.kill(os.getpid(), signum)

    return preexec
