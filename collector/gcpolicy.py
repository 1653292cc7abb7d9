"""The cyclic garbage collector's settings for the length of a collection run.

With thousands of episodes in flight the live heap holds every in-flight conversation and
request (turn records, token-id lists, coroutines, futures, aiohttp's request objects),
and with CPython's defaults (a young generation of 700 objects) nearly all of it survives
the young collections and is promoted, so full collections — each walking the whole
heap — come every few thousand turns, and each young collection walks requests that are
still waiting for their answer. Measured at 10,000 in flight (bench/collector_results.md):
two thirds of the collector's CPU was the cyclic GC (0.66–0.74 of 1.02–1.13 ms per turn),
while the collections found ~2,100 cyclic garbage objects in a 100,000-turn run (nearly
everything the collector frees goes by reference counting); with half the model calls
failing, ~11,000.

`run_gc()` therefore, while at least one run is active in the process: freezes the heap
that exists when the run starts (imports, configuration: never garbage) out of every
collection, and enlarges the young generation to `YOUNG_THRESHOLD` objects, longer than
an in-flight request lives at 10,000 in flight, so requests die young instead of being
walked and promoted (the older generations keep their default ratios). Cyclic garbage is
still collected, later: at most about `YOUNG_THRESHOLD` young objects wait for a
collection (peak RSS in the half-failing run: 441 MB, against 435 MB with the defaults).
The previous settings come back when the last active run ends (runs can overlap in one
process: counted); a process that had frozen objects itself before the run keeps its
freezing as it was (no freeze, no unfreeze).
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
