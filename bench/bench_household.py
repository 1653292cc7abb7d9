"""Benchmark of the household (ALFWorld-like) env.

Measures:
  1. loading: `HouseholdEnv.load` for the built-in generator and for the real ALFWorld games;
  2. the full real-data sweep, in process: every official walkthrough replayed + the expert on
     every game (wins counted), wall time;
  3. reset and step latency in process (warm game cache), generator speed;
  4. the service in a subprocess (`python -m cli.main serve household`): 64 concurrent
     sessions playing expert episodes (steps/s, p50/p99 step latency), then RSS per open session.

Run: `python bench/bench_household.py [--seconds 10] [--concurrency 64] [--data-dir DIR]`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import env_service, expert_episodes, pct, run_workers
from clients.env_client import AsyncEnvClient
from envs.household.data import HouseholdData, builtin_data
from envs.household.env import HouseholdEnv
from envs.household.generator import generate_game


def sweep(data: HouseholdData) -> None:
    env = HouseholdEnv(data)
    t = time.perf_counter()
    replayed = replay_wins = 0
    for task in data.tasks.values():
        walkthrough = data.walkthroughs.get(task.task_id)
        if not walkthrough:
            continue
        env.reset(task_id=task.task_id)
        for action in walkthrough:
            result = env.step(action)
        replayed += 1
        replay_wins += bool(result.info.get("success"))
    t_replay = time.perf_counter() - t
    t = time.perf_counter()
    wins = steps = 0
    for task in data.tasks.values():
        env.reset(task_id=task.task_id)
        while not env.done:
            result = env.step(env.expert_action())
            steps += 1
        wins += bool(result.info.get("success"))
    t_expert = time.perf_counter() - t
    print(f"  walkthrough replay: {replay_wins}/{replayed} won in {t_replay:.2f} s (includes parsing each game file once; "
          f"{data.unplayable_walkthroughs} stored walkthroughs name raw PDDL ids and are not replayed)")
    print(f"  expert: {wins}/{len(data.tasks)} won, {steps / len(data.tasks):.2f} steps per game, {t_expert:.2f} s")


def latency(data: HouseholdData, label: str) -> None:
    env = HouseholdEnv(data)
    ids = data.task_ids()
    for tid in ids:  # warm the shared game cache
        data.game(tid)
    resets: list[float] = []
    steps: list[float] = []
    experts: list[float] = []
    for tid in ids:
        t = time.perf_counter()
        env.reset(task_id=tid)
        resets.append(time.perf_counter() - t)
        while not env.done:
            t = time.perf_counter()
            action = env.expert_action()
            experts.append(time.perf_counter() - t)
            t = time.perf_counter()
            env.step(action)
            steps.append(time.perf_counter() - t)
    print(f"  {label}: reset mean {1000 * statistics.mean(resets):.3f} ms (p99 {pct(resets, .99):.3f}); step mean "
          f"{1000 * statistics.mean(steps):.3f} ms (p50 {pct(steps, .5):.3f}, p99 {pct(steps, .99):.3f}); expert_action "
          f"mean {1000 * statistics.mean(experts):.3f} ms; {len(steps)} steps")


async def steady_steps(client: AsyncEnvClient, task_ids: list[str], concurrency: int, seconds: float) -> None:
    lat: list[float] = []
    stop = time.perf_counter() + seconds

    async def worker(w: int) -> None:
        sid = (await client.create(task_id=task_ids[w % len(task_ids)])).session_id
        while time.perf_counter() < stop:
            t = time.perf_counter()
            step = await client.step(sid, "look" if len(lat) % 2 else "inventory")
            lat.append(time.perf_counter() - t)
            if step.done:
                await client.close(sid)
                sid = (await client.create(task_id=task_ids[w % len(task_ids)])).session_id
        await client.close(sid)

    elapsed = await run_workers(worker, concurrency)
    print(f"  steady look/inventory steps (valid actions listed each step): {len(lat) / elapsed:.0f} steps/s; "
          f"p50 {pct(lat, .5):.1f} ms, p99 {pct(lat, .99):.1f} ms")


async def memory_per_session(client: AsyncEnvClient, pid: int, task_ids: list[str], n: int) -> None:
    proc = psutil.Process(pid)
    for tid in task_ids:  # parse every game once so the shared cache is not counted per session
        sid = (await client.create(task_id=tid)).session_id
        await client.close(sid)
    before = proc.memory_info().rss
    ids = []
    for i in range(n):
        sid = (await client.create(task_id=task_ids[i % len(task_ids)])).session_id
        await client.step(sid, "look")
        ids.append(sid)
    after = proc.memory_info().rss
    for sid in ids:
        await client.close(sid)
    print(f"  memory: RSS {before / 2**20:.1f} MiB (all games parsed) -> {after / 2**20:.1f} MiB with {n} open sessions "
          f"= {(after - before) / n / 1024:.1f} KiB per session")


async def service(label: str, data_dir: Path | None, task_ids: list[str], concurrency: int, seconds: float) -> None:
    async with env_service("household", data_dir, max_connections=concurrency * 2) as (client, proc):
        rss = psutil.Process(proc.pid).memory_info().rss
        print(f"service ({label}), {concurrency} concurrent sessions, {seconds:g} s per run "
              f"(server RSS at start {rss / 2**20:.1f} MiB, no game parsed yet):")
        await expert_episodes(client, task_ids, concurrency, seconds, "{steps_per_s:.0f} steps/s ({episodes_per_s:.0f} episodes/s; "
                              "every step also costs an expert GET, every episode a create + close)")
        await steady_steps(client, task_ids, concurrency, seconds)
        await memory_per_session(client, proc.pid, task_ids, 512)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--data-dir", type=Path, default=ROOT.parent / "shared" / "data" / "alfworld")
    args = parser.parse_args()
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}")

    t = time.perf_counter()
    builtin = HouseholdEnv.load(None)
    print(f"load: built-in task list ({len(builtin.tasks)} generated tasks) {1000 * (time.perf_counter() - t):.0f} ms")
    t = time.perf_counter()
    for seed in range(300):
        generate_game(seed)
    print(f"generator: {1000 * (time.perf_counter() - t) / 300:.2f} ms per game (layout + expert check), mean of 300")
    real = None
    if args.data_dir.is_dir():
        t = time.perf_counter()
        real = HouseholdEnv.load(args.data_dir)
        print(f"load: real ALFWorld index ({len(real.tasks)} games) {1000 * (time.perf_counter() - t):.0f} ms")
        print("real-data sweep (in process, cold game cache):")
        sweep(real)
    print("in-process latency (warm game cache), expert episodes on every task:")
    latency(real or builtin, "real games" if real else "built-in games")
    if real is not None:
        latency(builtin_data(300), "generated games (300)")
    ids = (real or builtin).task_ids()
    asyncio.run(service("real ALFWorld games" if real else "built-in games", args.data_dir if real else None,
                        ids, args.concurrency, args.seconds))


if __name__ == "__main__":
    main()
