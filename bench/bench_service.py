"""Env service steps/s at the physical limit: trajgym's v1 HTTP API and its session channel against bare
HTTP and WebSocket no-ops and OpenEnv's own server, on the same counter env, at 1 / 32 / 256 / 1,024
concurrent sessions; then (optional) the real envs against their ideal, and 256 → 4,096 open sessions.

Every server is its own process, one uvicorn worker, with `trajgym serve`'s uvicorn settings:

* HTTP no-op: bench/noop_app.py (FastAPI `POST /noop`, pydantic body)                      req/s
* WS no-op:   bench/ws_noop_app.py (`WS /ws` echoing each JSON message), one WebSocket per session   msg/s
* trajgym v1: `trajgym serve tests.support.counter_env:CounterEnv`, `POST /v1/sessions/{id}/step`   steps/s
* channel:    the same service through `clients.env_channel.ChannelEnvClient` (one multiplexed WebSocket,
              or `--channel-connections K`), shared by all the row's sessions; "skipped" without it
* OpenEnv:    bench/openenv_peer.py (the counter env as an OpenEnv Environment, OpenEnv's `create_app`),
              one WebSocket per session in OpenEnv's own protocol (reset, then steps)      steps/s
              ("skipped" without PyPI openenv, which `make install` installs)

The load generator (bench/loadgen.py: aiohttp, uvloop when installed, in this process) is the same for
every row: each session sends `add[1]` until the episode ends (CounterEnv: 20 turns), then opens the next
(v1 / channel: close + create; OpenEnv: reset; the no-ops: nothing). Each row makes `--steps` attempts in
all; only steps are timed (latencies), but a row's wall time, hence its rate, also holds its connects,
handshakes and session opens; errors are counted per row, never raised.

`--real-envs`: for webshop, household, sql, qa (built-in data) the env's in-process `env.step` time over
its expert trajectories (precomputed here), then those trajectories replayed over the channel and v1 at
`--real-concurrency` sessions, against the ideal: 1 / (WS no-op time per message at that concurrency,
measured in this run + in-process step time); the goal is 0.7 of it. "With sessions" also counts, per step,
1 / (steps per episode) of a session's open and close messages and its in-process `EnvCls(data)` + reset +
close. A replayed episode that scores other than it did in process is counted as a reward mismatch. Both
sides are timed warm: the in-process replay is a second pass over the trajectories, and each served row
follows an untimed pass over all of them (the household env parses a game on its first reset).

`--scaling`: 256 → 1,024 → 4,096 sessions open at once and stepping over the channel and v1, each level on
a fresh service process (so that its RSS is its own): errors, steps/s, and the server's VmRSS before the
sessions open and once all are open (KiB per session).

    python bench/bench_service.py                                # the comparison table, 102,400 steps a row
    python bench/bench_service.py --real-envs --scaling          # everything (the final run)
    python bench/bench_service.py --steps 2048 --concurrency 1 32 --real-envs --real-steps 1024   # a quick check
    python bench/bench_service.py --concurrency --scaling        # only the scaling rows
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import itertools
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import loadgen
from services.ports import free_port_range
from bench.common import free_port, raise_open_files_limit, start, stop, vm_rss_kib, wait_ready
from bench.loadgen import Connect, Episode, Gate, Plan, Row, drive
from envs.registry import load_class
from tests.support.counter_env import CounterEnv

COUNTER = "tests.support.counter_env:CounterEnv"
SERVE_LIMITS = ("--max-sessions", "100000", "--max-sessions-per-client", "100000", "--max-sessions-per-address", "100000")
REAL_ENVS = ("webshop", "household", "sql", "qa")
ROWS = ("http_noop", "v1", "channel", "openenv", "ws_noop")  # the order the rows run in, at each concurrency
SERVER_OF = {"http_noop": "http_noop", "ws_noop": "ws_noop", "openenv": "openenv", "v1": "trajgym", "channel": "trajgym"}
LABELS = {"http_noop": "HTTP no-op", "v1": "trajgym v1", "channel": "channel", "openenv": "OpenEnv", "ws_noop": "WS no-op"}


# ----- servers -------------------------------------------------------------------------------------
class Server:
    """One server process on a free port, its stderr in a temporary file (shown if it fails to start)."""

    def __init__(self, argv: Sequence[str], ready_path: str, workers: int = 1) -> None:
        self.port = free_port() if workers == 1 else free_port_range(workers)
        # `serve --workers N`: N services on PORT..PORT+N-1; the rows spread their sessions over them ("url,url")
        self.url = ",".join(f"http://127.0.0.1:{self.port + i}" for i in range(workers))
        self.ready_urls = [u + ready_path for u in self.url.split(",")]
        self.log: IO[bytes] = tempfile.TemporaryFile()
        extra = ["--workers", str(workers)] if workers > 1 else []
        self.proc = start([*argv, "--port", str(self.port), *extra], stderr=self.log)

    def wait(self, timeout: float = 120.0) -> Server:
        try:
            for ready_url in self.ready_urls:
                wait_ready(ready_url, self.proc, timeout=timeout)
        except RuntimeError as err:
            self.log.seek(0)
            raise RuntimeError(f"{err}\n{self.log.read().decode(errors='replace')[-3000:]}") from err
        return self

    def stop(self) -> None:
        stop(self.proc)
        self.log.close()


def trajgym(env: str) -> Server:
    return Server(["-m", "cli.main", "serve", env, *SERVE_LIMITS], "/readyz")


@contextlib.contextmanager
def servers(names: Sequence[str], workers: int = 1) -> Iterator[dict[str, Server]]:
    """The counter rows' servers (v1 and channel share the trajgym service, `workers` processes of it), all
    started, then all stopped."""
    argv = {"http_noop": (["-m", "bench.noop_app"], "/docs"), "ws_noop": (["-m", "bench.ws_noop_app"], "/health"),
            "openenv": (["-m", "bench.openenv_peer"], "/health"), "trajgym": (["-m", "cli.main", "serve", COUNTER, *SERVE_LIMITS], "/readyz")}
    started = {name: Server(*argv[name], workers=workers if name == "trajgym" else 1) for name in names}
    try:
        for server in started.values():
            server.wait()
        yield started
    finally:
        for server in started.values():
            server.stop()


# ----- rows --------------------------------------------------------------------------------------------
def transport(row: str, url: str, concurrency: int, channel_connections: int) -> contextlib.AbstractAsyncContextManager[Connect]:
    if row == "channel":
        return loadgen.channel(url, channel_connections)
    return {"http_noop": loadgen.http_noop, "ws_noop": loadgen.ws_noop, "v1": loadgen.v1, "openenv": loadgen.openenv}[row](url, concurrency)


async def run_row(row: str, url: str, plan: Plan, steps: int, concurrency: int, channel_connections: int = 1,
                  gate: Gate | None = None) -> Row:
    """One row; a transport that cannot even be set up is a row with that one error."""
    try:
        async with transport(row, url, concurrency, channel_connections) as connect:
            return await drive(connect, plan, steps, concurrency, gate)
    except Exception as err:  # noqa: BLE001 (counted, shown in the table)
        failed = Row()
        failed.fail(err)
        if gate is not None:
            gate.all_in.set()
        return failed


def counter_plan(w: int) -> Iterator[Episode]:
    """Worker w's episodes: seed w, `add[1]` until the turn limit ends it."""
    return itertools.repeat(Episode(None, w, ("add[1]",) * CounterEnv.max_turns))


def replay_plan(episodes: Sequence[Episode], concurrency: int) -> Plan:
    """Worker w replays episodes w, w + concurrency, w + 2·concurrency, ... (cycling)."""
    def plan(w: int) -> Iterator[Episode]:
        for k in itertools.count(w, concurrency):
            yield episodes[k % len(episodes)]
    return plan


def describe(label: str, row: Row, unit: str = "steps/s") -> str:
    errors = f"{row.errors} errors" + (f" (first: {row.first_error})" if row.errors else "")
    mismatches = f", {row.mismatches} reward mismatches" if row.mismatches else ""
    return (f"  {label:<24} {row.rate:>8.0f} {unit:<7}  p50 {row.p50:6.2f} ms  p99 {row.p99:7.2f} ms  "
            f"{row.steps} steps in {row.seconds:.1f} s, {errors}{mismatches}")


# ----- the comparison table --------------------------------------------------------------------------
Results = dict[tuple[str, int], Row]


async def comparison(urls: dict[str, str], concurrency: Sequence[int], steps: int, channel_k: int,
                     skipped: dict[str, str]) -> Results:
    rows = [r for r in ROWS if r not in skipped]
    for row in rows:  # warm-up: imports, route compilation, connection pools, the JIT-free parts of the env
        await run_row(row, urls[row], counter_plan, 512, 8, channel_k)
    results: Results = {}
    for c in concurrency:
        print(f"concurrency {c}:")
        for row in rows:
            results[row, c] = await run_row(row, urls[row], counter_plan, steps, c, channel_k)
            print(describe(LABELS[row], results[row, c], "msg/s" if row == "ws_noop" else "req/s" if row == "http_noop" else "steps/s"),
                  flush=True)
        for row, why in skipped.items():
            print(f"  {LABELS[row]:<24} skipped ({why})")
    return results


def _cell(row: Row | None, width: int, base: Row | None = None) -> str:
    if row is None:
        return f"{'skipped':>{width}}"
    text = f"{row.rate:.0f}" + (f" ({row.rate / base.rate:.2f})" if base is not None and base.rate else "")
    return f"{text + ('*' if row.errors else ''):>{width}}"


def print_table(results: Results, concurrency: Sequence[int]) -> None:
    heads = ["conc", "HTTP no-op req/s", "trajgym v1 steps/s (ratio to no-op)", "channel steps/s", "OpenEnv steps/s",
             "WS no-op msg/s", "p99 ms: no-op / v1 / channel / OpenEnv / WS", "errors (same order)"]
    print("| " + " | ".join(heads) + " |")
    print("|" + "|".join("-" * (len(h) + 2) for h in heads) + "|")
    for c in concurrency:
        got = {r: results.get((r, c)) for r in ROWS}
        p99 = " / ".join("–" if got[r] is None else f"{got[r].p99:.1f}" for r in ROWS)  # type: ignore[union-attr]
        errors = " / ".join("–" if got[r] is None else str(got[r].errors) for r in ROWS)  # type: ignore[union-attr]
        cells = [f"{c:>{len(heads[0])}}", _cell(got["http_noop"], len(heads[1])), _cell(got["v1"], len(heads[2]), got["http_noop"]),
                 _cell(got["channel"], len(heads[3])), _cell(got["openenv"], len(heads[4])), _cell(got["ws_noop"], len(heads[5])),
                 f"{p99:>{len(heads[6])}}", f"{errors:>{len(heads[7])}}"]
        print("| " + " | ".join(cells) + " |")
    if any(row.errors for row in results.values()):
        print("(* the row had errors)")


def print_goals(results: Results, concurrency: Sequence[int]) -> None:
    """Each goal ratio at the concurrencies it is set for, marked met / not met."""
    goals: list[tuple[str, Sequence[int], Callable[[Row, Row], float], str, str, str, float]] = [
        ("channel / OpenEnv steps/s", (32, 256, 1024), lambda a, b: a.rate / b.rate, "channel", "openenv", ">=", 1.5),
        ("channel / WS no-op", tuple(concurrency), lambda a, b: a.rate / b.rate, "channel", "ws_noop", ">=", 0.5),
        ("v1 / HTTP no-op", (32, 256), lambda a, b: a.rate / b.rate, "v1", "http_noop", ">=", 0.7),
        ("v1 p99 / HTTP no-op p99", (256,), lambda a, b: a.p99 / b.p99, "v1", "http_noop", "<=", 1.5),
    ]
    print("| goal | conc | measured | target | |")
    print("|---|---|---|---|---|")
    for name, at, ratio, top, bottom, op, target in goals:
        for c in at:
            a, b = results.get((top, c)), results.get((bottom, c))
            if a is None or b is None or not b.rate or not a.rate:
                print(f"| {name} | {c} | not measured | {op} {target} | |")
                continue
            value = ratio(a, b)
            met = value >= target if op == ">=" else value <= target
            note = " (rows with errors)" if a.errors or b.errors else ""
            print(f"| {name} | {c} | {value:.2f} | {op} {target} | {'met' if met else 'not met'}{note} |")


# ----- real envs ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class InProcess:
    """An env's expert trajectories and what they cost in this process (seconds, means)."""

    episodes: list[Episode]
    step_s: float  # one `env.step` of a replayed expert action
    open_s: float  # one session's `EnvCls(data)` + `env.reset(task_id)` + `env.close()`

    @property
    def total_steps(self) -> int:
        return sum(len(e.actions) for e in self.episodes)

    @property
    def steps_per_episode(self) -> float:
        return self.total_steps / len(self.episodes)


def expert_trajectories(name: str) -> InProcess:
    """Every built-in task's expert trajectory (computed here), then a second, timed replay of them all on a
    fresh env per episode, as the service opens one per session (the expert's own thinking not timed)."""
    cls = load_class(name)
    data = cls.load_data()
    env = cls(data)
    episodes = []
    for task_id in data.task_ids():
        env.reset(task_id=task_id)
        actions, reward = [], 0.0
        while not env.done:
            actions.append(env.expert_action())
            reward = env.step(actions[-1]).reward
        episodes.append(Episode(task_id, None, tuple(actions), reward))
    env.close()
    step_s = open_s = 0.0
    for episode in episodes:
        t = time.perf_counter()
        env = cls(data)
        env.reset(task_id=episode.task_id)
        open_s += time.perf_counter() - t
        for action in episode.actions:
            t = time.perf_counter()
            env.step(action)
            step_s += time.perf_counter() - t
        t = time.perf_counter()
        env.close()
        open_s += time.perf_counter() - t
    data.close()
    return InProcess(episodes, step_s / sum(len(e.actions) for e in episodes), open_s / len(episodes))


async def real_envs(ws_noop_url: str, results: Results, concurrency: int, steps: int, counter_steps: int,
                    channel_k: int, channel_skip: str | None) -> None:
    ws_row = results.get(("ws_noop", concurrency))
    if ws_row is None:
        ws_row = results["ws_noop", concurrency] = await run_row("ws_noop", ws_noop_url, counter_plan, counter_steps, concurrency)
    per_message = 1 / ws_row.rate
    print(f"real envs at {concurrency} sessions: ideal time per step = WS no-op time per message at {concurrency} "
          f"({1000 * per_message:.3f} ms, this run) + the env's in-process step time; 'with sessions' adds, per step, "
          f"the open and close messages and the in-process open (new env + reset) and close of 1 / (steps per episode) sessions")
    table = []
    for name in REAL_ENVS:
        local = expert_trajectories(name)
        ideal = 1 / (per_message + local.step_s)
        length = local.steps_per_episode
        ideal_sessions = 1 / (per_message * (1 + 2 / length) + local.step_s + local.open_s / length)
        print(f" {name}: {len(local.episodes)} expert trajectories, {length:.1f} steps each; in-process step "
              f"{1000 * local.step_s:.3f} ms, open + close {1000 * local.open_s:.3f} ms; ideal {ideal:.0f} steps/s, "
              f"with sessions {ideal_sessions:.0f}", flush=True)
        server = trajgym(name).wait()
        try:
            rows = [r for r in ("channel", "v1") if not (r == "channel" and channel_skip)]
            measured: dict[str, Row] = {}
            for row in rows:
                # warm-up: every trajectory once, as the in-process timing is a second pass (the household env
                # parses a game on its first reset and keeps it; a cold service would be timed parsing 600 games)
                await run_row(row, server.url, replay_plan(local.episodes, 8), local.total_steps, 8, channel_k)
                measured[row] = await run_row(row, server.url, replay_plan(local.episodes, concurrency), steps, concurrency, channel_k)
                print(describe(f"{LABELS[row]} (ratio {measured[row].rate / ideal:.2f})", measured[row]), flush=True)
        finally:
            server.stop()
        table.append((name, local, ideal, ideal_sessions, measured))
    print("| env | steps / episode | in-process step ms | open + close ms | ideal steps/s (with sessions) | "
          "channel steps/s: ratio to ideal (with sessions) | v1 steps/s: ratio (with sessions) | p99 ms channel / v1 | "
          "errors, reward mismatches: channel / v1 | goal channel ≥ 0.7 × ideal |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name, local, ideal, ideal_sessions, measured in table:
        ch, v = measured.get("channel"), measured.get("v1")
        cell = ["skipped" if r is None else f"{r.rate:.0f}: {r.rate / ideal:.2f} ({r.rate / ideal_sessions:.2f})" for r in (ch, v)]
        p99 = " / ".join("–" if r is None else f"{r.p99:.1f}" for r in (ch, v))
        errs = " / ".join("–" if r is None else f"{r.errors}, {r.mismatches}" for r in (ch, v))
        goal = "not measured" if ch is None else ("met" if ch.rate / ideal >= 0.7 and not (ch.errors or ch.mismatches) else "not met")
        print(f"| {name} | {local.steps_per_episode:.1f} | {1000 * local.step_s:.3f} | {1000 * local.open_s:.3f} | "
              f"{ideal:.0f} ({ideal_sessions:.0f}) | {cell[0]} | {cell[1]} | {p99} | {errs} | {goal} |")


# ----- scaling ------------------------------------------------------------------------------------
async def scaling(levels: Sequence[int], steps: int, channel_k: int, channel_skip: str | None) -> None:
    print(f"scaling: sessions open at once and stepping, a fresh counter service per level; {steps} step attempts a level")
    print("| sessions | transport | steps/s | p50 / p99 ms | errors | RSS before MiB | RSS all open MiB | KiB per open session |")
    print("|---|---|---|---|---|---|---|---|")
    for row in ("channel", "v1"):
        if row == "channel" and channel_skip:
            print(f"| – | channel | skipped ({channel_skip}) | | | | | |")
            continue
        for n in levels:
            server = trajgym(COUNTER).wait()
            try:
                await run_row(row, server.url, counter_plan, 256, 8, channel_k)  # warm-up
                before = vm_rss_kib(server.proc.pid)
                gate = Gate(n)
                task = asyncio.create_task(run_row(row, server.url, counter_plan, max(steps, n), n, channel_k, gate))
                await asyncio.wait([task, asyncio.create_task(gate.all_in.wait())], return_when=asyncio.FIRST_COMPLETED)
                all_open = vm_rss_kib(server.proc.pid)
                gate.release()
                result = await task
            finally:
                server.stop()
            errors = f"{result.errors}" + (f" ({result.first_error})" if result.errors else "")
            print(f"| {n} | {LABELS[row]} | {result.rate:.0f} | {result.p50:.1f} / {result.p99:.1f} | {errors} | {before / 1024:.0f} | "
                  f"{all_open / 1024:.0f} | {(all_open - before) / n:.1f} |", flush=True)


# ----- main ---------------------------------------------------------------------------------------
def openenv_missing() -> str | None:
    """Why the OpenEnv row cannot run here (None when PyPI `openenv` is installed)."""
    return None if importlib.util.find_spec("openenv") else "PyPI openenv is not installed (make install)"


def load() -> str:
    return "load average " + " ".join(f"{x:.2f}" for x in os.getloadavg())


async def main(args: argparse.Namespace) -> None:
    skipped = {row: why for row, why in (("channel", loadgen.channel_missing()), ("openenv", openenv_missing())) if why}
    channel_skip = skipped.get("channel")
    open_files = raise_open_files_limit()
    print(f"{time.strftime('%Y-%m-%d %H:%M:%S %Z')}, {platform.node()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
          f"load generator loop {type(asyncio.get_running_loop()).__module__}, open-files limit {open_files}")
    print(f"start: {load()}")
    print(f"{args.steps} step attempts a row; trajgym served by {args.workers} worker process(es); channel: "
          + (f"skipped ({channel_skip})" if channel_skip else f"{args.channel_connections} ChannelEnvClient(s) per row"))
    wanted = ["ws_noop"] if args.real_envs else []
    if args.concurrency:
        wanted = ["http_noop", "ws_noop", "trajgym"] + ([] if "openenv" in skipped else ["openenv"])
    with servers(wanted, args.workers) as running:
        urls = {row: running[server].url for row, server in SERVER_OF.items() if server in running}
        results: Results = {}
        if args.concurrency:
            results = await comparison(urls, args.concurrency, args.steps, args.channel_connections, skipped)
            print()
            print_table(results, args.concurrency)
            print()
            print_goals(results, args.concurrency)
        if args.real_envs:
            print()
            await real_envs(urls["ws_noop"], results, args.real_concurrency, args.real_steps, args.steps,
                            args.channel_connections, channel_skip)
    if args.scaling:
        print()
        await scaling(args.scaling_sessions, args.steps, args.channel_connections, channel_skip)
    print(f"end: {load()}")


def run() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=102_400, help="step attempts per row (split over its sessions)")
    ap.add_argument("--concurrency", type=int, nargs="*", default=[1, 32, 256, 1024],
                    help="concurrent sessions of the comparison rows (none: skip the comparison)")
    ap.add_argument("--channel-connections", type=int, default=1, metavar="K", help="spread a row's sessions over K channel clients")
    ap.add_argument("--workers", type=int, default=1, metavar="N",
                    help="serve the counter env with `trajgym serve --workers N`; v1 and channel sessions spread over the N")
    ap.add_argument("--real-envs", action="store_true", help="the real envs against their ideal")
    ap.add_argument("--real-concurrency", type=int, default=32)
    ap.add_argument("--real-steps", type=int, default=20_480, help="step attempts per real-env row")
    ap.add_argument("--scaling", action="store_true", help="sessions open at once: steps/s, errors, server RSS per session")
    ap.add_argument("--scaling-sessions", type=int, nargs="+", default=[256, 1024, 4096])
    args = ap.parse_args()
    if args.channel_connections < 1:
        ap.error("--channel-connections must be at least 1")
    try:
        import uvloop
    except ImportError:
        asyncio.run(main(args))
    else:
        uvloop.run(main(args))


if __name__ == "__main__":
    run()
