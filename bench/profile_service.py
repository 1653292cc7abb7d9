"""Where an env service's time goes: py-spy samples the counter-env service while bench_service's load
generator drives one surface (v1 HTTP or the session channel) at one concurrency, then prints the
functions with the most samples, by own time, by file and inclusive (BENCHMARKS.md's profile summary).

    python bench/profile_service.py --surface v1 --concurrency 32 [--seconds 8] [--top 20]
    python bench/profile_service.py --surface channel --concurrency 256

Needs py-spy (the `bench` extra, bench/pyspy.py) and the right to attach to a child process (root, or
ptrace_scope 0). Idle samples are left out (py-spy's default), so the shares are of the service's busy time.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.bench_service import COUNTER, SERVE_LIMITS, Server, counter_plan, run_row  # noqa: E402
from bench.pyspy import recording, summary  # noqa: E402


async def profile(url: str, surface: str, concurrency: int, seconds: float, pid: int, out: Path) -> None:
    await run_row(surface, url, counter_plan, 512, 8)  # warm-up, not sampled
    load = asyncio.create_task(run_row(surface, url, counter_plan, 10**9, concurrency))
    with recording(out, pid=pid):
        await asyncio.sleep(seconds)
    load.cancel()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--surface", choices=("v1", "channel"), default="v1")
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--seconds", type=float, default=8.0)
    ap.add_argument("--top", type=int, default=20)
    args = ap.parse_args()
    server = Server(["-m", "cli.main", "serve", COUNTER, *SERVE_LIMITS], "/readyz").wait()
    out = Path(tempfile.mkdtemp()) / f"service-{args.surface}-{args.concurrency}.txt"
    try:
        asyncio.run(profile(server.url, args.surface, args.concurrency, args.seconds, server.proc.pid, out))
    finally:
        server.stop()
    print(f"{args.surface}, {args.concurrency} sessions, {args.seconds:g} s of the service sampled")
    print(summary(out, args.top))


if __name__ == "__main__":
    main()
