"""Soak test of every env service: many concurrent sessions opened, played a little and abandoned.

For each env, starts `python -m cli.main serve ENV` in a subprocess (built-in data unless
`--data-root` is given) and runs `--concurrency` workers for `--minutes`. Each worker loops:
open a session (random seed), take 1..`--max-steps` expert steps (GET expert + POST step), then
close it (`--close-fraction` of the time) or abandon it (left for the idle-TTL reaper). It records
request throughput, p50/p99 latency, the error count (any non-2xx or transport error; target 0)
and the server's RSS every `--sample-seconds` (psutil). Writes a PNG of RSS over time and a
markdown table. Loopback only; bounded by `--minutes`; the server is stopped at the end.

Usage: python bench/soak.py [--envs webshop household sql qa] [--minutes 10] [--concurrency 256]
       [--session-ttl 30] [--png bench/soak_rss.png] [--out bench/soak_results.md]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import psutil

from services.ports import free_port

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class EnvRun:
    env: str
    seconds: float = 0.0
    requests: int = 0
    sessions_opened: int = 0
    sessions_closed: int = 0
    sessions_abandoned: int = 0
    errors: int = 0
    error_samples: list[str] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)
    rss: list[tuple[float, float]] = field(default_factory=list)  # (seconds since start, MiB)
    open_at_end: int = 0

    def error(self, text: str) -> None:
        self.errors += 1
        if len(self.error_samples) < 5:
            self.error_samples.append(text[:200])

    def pct(self, q: float) -> float:
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def start_server(env: str, port: int, ttl: float, data_root: Path | None) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-m", "cli.main", "serve", env, "--port", str(port),
           "--max-sessions", "100000", "--session-ttl", str(ttl)]
    if data_root is not None and (data_root / env).is_dir():
        cmd += ["--data-dir", str(data_root / env)]
    return subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


async def wait_ready(proc: subprocess.Popen[bytes], url: str, http: aiohttp.ClientSession) -> None:
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited: {proc.stderr.read().decode() if proc.stderr else ''}")
        try:
            async with http.get(url + "/readyz") as r:
                if r.status == 200:
                    return
        except aiohttp.ClientError:
            pass
        await asyncio.sleep(0.2)
    raise RuntimeError("server not ready after 180 s")


def tree_rss(pid: int) -> float:
    proc = psutil.Process(pid)
    total = proc.memory_info().rss
    for child in proc.children(recursive=True):
        try:
            total += child.memory_info().rss
        except psutil.Error:
            pass
    return total / 2**20


async def call(http: aiohttp.ClientSession, run: EnvRun, method: str, url: str, json: object = None) -> dict | None:
    started = time.perf_counter()
    try:
        async with http.request(method, url, json=json) as r:
            body = await r.json(content_type=None)
            run.latencies.append(time.perf_counter() - started)
            run.requests += 1
            if r.status >= 400:
                run.error(f"{method} {url.split('/v1')[-1]} -> {r.status} {body}")
                return None
            return body
    except (aiohttp.ClientError, asyncio.TimeoutError, ValueError) as err:
        run.error(f"{method} {url} -> {type(err).__name__}: {err}")
        return None


async def worker(http: aiohttp.ClientSession, base: str, run: EnvRun, stop: float, rng: random.Random,
                 max_steps: int, close_fraction: float) -> None:
    while time.monotonic() < stop:
        created = await call(http, run, "POST", base + "/v1/sessions", {"seed": rng.randrange(1_000_000)})
        if created is None:
            await asyncio.sleep(0.05)
            continue
        run.sessions_opened += 1
        sid = created["session_id"]
        for _ in range(rng.randint(1, max_steps)):
            expert = await call(http, run, "GET", f"{base}/v1/sessions/{sid}/expert")
            if expert is None:
                break
            result = await call(http, run, "POST", f"{base}/v1/sessions/{sid}/step", {"action": expert["action"]})
            if result is None or result["done"]:
                break
        if rng.random() < close_fraction:
            await call(http, run, "DELETE", f"{base}/v1/sessions/{sid}")
            run.sessions_closed += 1
        else:
            run.sessions_abandoned += 1


async def sampler(pid: int, run: EnvRun, t0: float, stop: float, every: float) -> None:
    while time.monotonic() < stop:
        run.rss.append((time.monotonic() - t0, tree_rss(pid)))
        await asyncio.sleep(every)


async def soak_env(env: str, args: argparse.Namespace) -> EnvRun:
    run = EnvRun(env)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    proc = start_server(env, port, args.session_ttl, args.data_root)
    connector = aiohttp.TCPConnector(limit=args.concurrency + 8, keepalive_timeout=4.0)
    try:
        async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=60)) as http:
            await wait_ready(proc, base, http)
            t0 = time.monotonic()
            stop = t0 + args.minutes * 60
            rng = random.Random(args.seed)
            tasks = [asyncio.create_task(worker(http, base, run, stop, random.Random(rng.random()), args.max_steps,
                                                args.close_fraction)) for _ in range(args.concurrency)]
            tasks.append(asyncio.create_task(sampler(proc.pid, run, t0, stop, args.sample_seconds)))
            await asyncio.gather(*tasks)
            run.seconds = time.monotonic() - t0
            async with http.get(base + "/healthz") as r:
                run.open_at_end = (await r.json())["sessions"]
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
    return run


def steady(run: EnvRun, warmup: float) -> tuple[float, float, float]:
    """RSS (MiB) at the end of warm-up, at the end, and the max after warm-up."""
    after = [m for t, m in run.rss if t >= warmup] or [m for _, m in run.rss]
    return after[0], after[-1], max(after)


def plot(runs: list[EnvRun], path: Path, warmup: float) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 3.2), dpi=72)
    for run in runs:
        ax.plot([t / 60 for t, _ in run.rss], [m for _, m in run.rss], label=run.env, linewidth=1)
    ax.axvline(warmup / 60, color="grey", linestyle=":", linewidth=1)
    ax.set_xlabel("minutes")
    ax.set_ylabel("server RSS (MiB)")
    ax.set_title("soak: RSS over time (dotted: end of warm-up)", fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


def report(runs: list[EnvRun], args: argparse.Namespace, command: str) -> str:
    lines = [
        "# Soak results", "",
        f"Command: `{command}`", "",
        f"{args.concurrency} concurrent workers per env service, {args.minutes} min each; each worker opens a session, "
        f"takes 1..{args.max_steps} expert steps, then closes it ({args.close_fraction:.0%}) or abandons it "
        f"(reaped after the {args.session_ttl:g} s idle TTL). Built-in data. Load generator and server share the same "
        "2-core machine (other jobs running), so throughput is a lower bound.", "",
        f"RSS plot: `{args.png.relative_to(ROOT) if args.png.is_relative_to(ROOT) else args.png}`; "
        f"warm-up = first {args.warmup:g} s.", "",
        "| env | seconds | requests | req/s | sessions opened | closed | abandoned | open at end | p50 ms | p99 ms "
        "| errors | RSS after warm-up MiB | RSS end MiB | RSS max after warm-up MiB |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in runs:
        start, end, peak = steady(r, args.warmup)
        lines.append(f"| {r.env} | {r.seconds:.0f} | {r.requests} | {r.requests / max(r.seconds, 1e-9):.0f} | "
                     f"{r.sessions_opened} | {r.sessions_closed} | {r.sessions_abandoned} | {r.open_at_end} | "
                     f"{r.pct(0.5):.1f} | {r.pct(0.99):.1f} | {r.errors} | {start:.0f} | {end:.0f} | {peak:.0f} |")
    samples = [f"- {r.env}: {s}" for r in runs for s in r.error_samples]
    if samples:
        lines += ["", "Error samples:", *samples]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--envs", nargs="+", default=["webshop", "household", "sql", "qa"])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, default=256)
    parser.add_argument("--max-steps", type=int, default=4)
    parser.add_argument("--close-fraction", type=float, default=0.5)
    parser.add_argument("--session-ttl", type=float, default=30.0)
    parser.add_argument("--sample-seconds", type=float, default=2.0)
    parser.add_argument("--warmup", type=float, default=60.0, help="seconds counted as warm-up in the RSS summary")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data-root", type=Path, default=None, help="e.g. ../shared/data (default: built-in data)")
    parser.add_argument("--png", type=Path, default=ROOT / "bench" / "soak_rss.png")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "soak_results.md")
    args = parser.parse_args()
    args.png, args.out = args.png.resolve(), args.out.resolve()
    runs = []
    for env in args.envs:
        run = asyncio.run(soak_env(env, args))
        start, end, peak = steady(run, args.warmup)
        print(f"{env}: {run.requests} requests in {run.seconds:.0f} s ({run.requests / max(run.seconds, 1e-9):.0f}/s), "
              f"p99 {run.pct(0.99):.1f} ms, errors {run.errors}, RSS {start:.0f} -> {end:.0f} MiB (max {peak:.0f})",
              flush=True)
        runs.append(run)
    plot(runs, args.png, args.warmup)
    command = "python bench/soak.py " + " ".join(sys.argv[1:])
    args.out.write_text(report(runs, args, command.strip()))
    print(f"wrote {args.out} and {args.png}")


if __name__ == "__main__":
    main()
