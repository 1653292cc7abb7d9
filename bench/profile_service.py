"""Where an env service's time goes: py-spy samples the counter-env service while bench_service's load
generator drives one surface (v1 HTTP or the session channel) at one concurrency, then prints the frames
with the most samples, by own time and by inclusive time (what BENCHMARKS.md's profile summary lists).

    python bench/profile_service.py --surface v1 --concurrency 32 [--seconds 8] [--top 20]
    python bench/profile_service.py --surface channel --concurrency 256

Needs py-spy (the `bench` extra) and the right to attach to a child process (root, or ptrace_scope 0).
Only the service's event-loop thread is counted; idle samples are left out (py-spy's default).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.bench_service import COUNTER, SERVE_LIMITS, Server, counter_plan, run_row  # noqa: E402


def summarize(speedscope: Path, top: int) -> str:
    """The top frames of the main thread by own and by inclusive samples, as two markdown tables."""
    data = json.loads(speedscope.read_text())
    frames = data["shared"]["frames"]
    main = [p for p in data["profiles"] if "MainThread" in p.get("name", "")] or data["profiles"][:1]
    own: collections.Counter[int] = collections.Counter()
    inclusive: collections.Counter[int] = collections.Counter()
    total = 0.0
    for profile in main:
        for sample, weight in zip(profile["samples"], profile["weights"]):
            if not sample:
                continue
            total += weight
            own[sample[-1]] += weight
            for frame in set(sample):
                inclusive[frame] += weight

    def name(i: int) -> str:
        f = frames[i]
        where = str(f.get("file", "")).split("site-packages/")[-1].replace(str(ROOT) + "/", "")
        return f"`{f['name']}` {where}:{f.get('line', '')}"

    lines = [f"{total:.1f} s of samples on the event loop thread", "", "| own % | frame |", "|---|---|"]
    lines += [f"| {100 * w / total:.1f} | {name(i)} |" for i, w in own.most_common(top)]
    lines += ["", "| inclusive % | frame |", "|---|---|"]
    skip = ("runpy", "typer", "click", "cli/", "runners.py", "uvicorn/server.py", "_compat.py", "services/runner.py")
    kept = [(i, w) for i, w in inclusive.most_common(top * 3) if not any(s in str(frames[i].get("file", "")) for s in skip)]
    lines += [f"| {100 * w / total:.1f} | {name(i)} |" for i, w in kept[:top]]
    return "\n".join(lines)


async def drive(url: str, surface: str, concurrency: int, steps: int) -> None:
    await run_row(surface, url, counter_plan, 512, 8)  # warm-up
    await run_row(surface, url, counter_plan, steps, concurrency)  # until py-spy is done (then cancelled)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--surface", choices=("v1", "channel"), default="v1")
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--seconds", type=float, default=8.0)
    ap.add_argument("--steps", type=int, default=2_000_000, help="upper bound; the load stops when py-spy is done")
    ap.add_argument("--top", type=int, default=20)
    args = ap.parse_args()
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    server = Server(["-m", "cli.main", "serve", COUNTER, *SERVE_LIMITS], "/readyz").wait()
    out = Path(tempfile.mkdtemp()) / "profile.json"
    try:
        spy = subprocess.Popen([py_spy, "record", "--pid", str(server.proc.pid), "--duration", str(int(args.seconds)),
                                "--rate", "250", "--format", "speedscope", "--output", str(out), "--nonblocking"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

        async def run() -> None:
            load = asyncio.create_task(drive(server.url, args.surface, args.concurrency, args.steps))
            while spy.poll() is None:
                await asyncio.sleep(0.2)
            load.cancel()

        asyncio.run(run())
        if spy.returncode != 0:
            raise SystemExit(f"py-spy failed: {spy.stderr.read().decode() if spy.stderr else ''}")
    finally:
        server.stop()
    print(f"## {args.surface}, {args.concurrency} sessions, {args.seconds:g} s\n")
    print(summarize(out, args.top))


if __name__ == "__main__":
    main()
