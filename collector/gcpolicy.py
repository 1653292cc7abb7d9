"""The cyclic garbage collector's settings for the length of a collection run.

With thousands of episodes in flight the live heap holds every in-flight conversation
(turn records, token-id and logprob lists, coroutines, pending requests), and with
CPython's defaults (a young generation of 700 objects) most of them survive two young
collections and are promoted, so full collections — each walking the whole heap —
come every few hundred turns. Measured at 10,000 in flight (bench/collector_results.md):
the collector spent 47–58 % of its CPU in the cyclic GC, 0.45 ms per turn in full
collections alone, while the collections found ~2,000 cyclic garbage objects in a
100,000-turn run (nearly everything the collector frees goes by reference counting).

`run_gc()` therefore, while at least one run is active in the process: freezes the heap
that exists when the run starts (imports, the job, the task list: never garbage) out of
every collection, and enlarges the young generation to `YOUNG_THRESHOLD` objects
(the older generations keep their default ratios, so full collections still come, just
~140× less often). Cyclic garbage is still collected, later: at most `YOUNG_THRESHOLD`
young objects wait for a collection. The previous settings come back when the last
active run ends (runs can overlap in one process: counted); a process that had frozen
objects itself before the run keeps its freezing as it was (no freeze, no unfreeze).
"""

from __future__ import annotations

import contextlib
import gc
import threading
from collections.abc import Iterator

YOUNG_THRESHOLD = 300_000

_lock = threading.Lock()
_active = 0
_saved: tuple[int, int, int] | None = None
_froze = False


@contextlib.contextmanager
def run_gc() -> Iterator[None]:
    """GC settings for a run (see the module docstring), restored when the last overlapping run ends."""
    global _active, _saved, _froze
    with _lock:
        if _active == 0:
            _saved = gc.get_threshold()
            _froze = gc.get_freeze_count() == 0  # a process that froze objects itself keeps its own freezing
            if _froze:
                gc.freeze()
            if _saved[0]:  # 0: automatic collection is off; left off
                gc.set_threshold(max(YOUNG_THRESHOLD, _saved[0]), *_saved[1:])
        _active += 1
    try:
        yield
    finally:
        with _lock:
            _active -= 1
            if _active == 0 and _saved is not None:
                gc.set_threshold(*_saved)
                if _froze:
                    gc.unfreeze()
                _saved, _froze = None, False
