"""Sampling profiles of a benchmark's own process with py-spy (the `bench` extra), and their summary.

`recording(path)` runs `py-spy record --format raw` against this process (every thread, no pauses:
`--nonblocking`) for the length of the `with` block; py-spy samples from outside, so the profiled
process's own CPU time is not inflated by the profiler. `summary(path)` reads the collapsed stacks
back: the share of samples per function, by self time and inclusive, and the share of self time
per file. py-spy needs ptrace rights over the process (root, or `kernel.yama.ptrace_scope` 0).
"""

from __future__ import annotations

import collections
import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

_FRAME = re.compile(r"(?P<name>.*) \((?P<file>.*?)(?::\d+)?\)$")
_PREFIX = re.compile(r"^.*/site-packages/|^.*/lib/python3\.\d+/|^" + re.escape(str(Path(__file__).resolve().parents[1])) + "/")


def _py_spy() -> str:
    exe = Path(sys.executable).with_name("py-spy")
    found = str(exe) if exe.exists() else shutil.which("py-spy")
    if found is None:
        raise RuntimeError("py-spy is not installed: pip install -e '.[bench]'")
    return found


@contextlib.contextmanager
def recording(path: Path, rate: int = 200, pid: int | None = None) -> Iterator[None]:
    """Sample this process (or process `pid`) into `path` (py-spy raw format) while the block runs."""
    proc = subprocess.Popen([_py_spy(), "record", "--pid", str(pid or os.getpid()), "--format", "raw", "--rate", str(rate),
                             "--nonblocking", "--output", str(path)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    time.sleep(1.0)  # py-spy attaches
    if proc.poll() is not None:
        raise RuntimeError(f"py-spy failed: {proc.stderr.read().decode()[-500:] if proc.stderr else ''}")
    try:
        yield
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()


def _frame(frame: str) -> str:
    """`func (/long/path/site-packages/pkg/file.py:12)` → `func (pkg/file.py)`."""
    m = _FRAME.match(frame)
    return f"{m['name']} ({_PREFIX.sub('', m['file'])})" if m else frame


def summary(path: Path, top: int = 15) -> str:
    """Top functions by self and inclusive share of samples, and self share per file."""
    own: collections.Counter[str] = collections.Counter()
    incl: collections.Counter[str] = collections.Counter()
    files: collections.Counter[str] = collections.Counter()
    total = 0
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        total += n
        frames = [_frame(f) for f in stack.split(";")]
        own[frames[-1]] += n
        files[frames[-1].rpartition("(")[2].rstrip(")") or "?"] += n
        for f in set(frames):
            incl[f] += n
    if not total:
        return f"{path}: no samples"
    out = [f"{path.name}: {total} samples"]
    for title, counter in (("self", own), ("self by file", files), ("inclusive", incl)):
        out.append(f"  -- {title}")
        out += [f"  {100 * v / total:5.1f} %  {k}" for k, v in counter.most_common(top)]
    return "\n".join(out)
