"""Benchmark of the QA-with-search env on the real HotpotQA corpus (or the built-in set).

Measures:
  1. index build: `QaEnv.load(dir)` (read + sentence split + BM25 index), median of 3, in-process;
  2. the expert's grounded success (answer shown before finishing) and search latency in-process (`env.step`): exact-title hits and misses (BM25 "Similar:" list);
  3. the service (`python -m cli.main serve qa --data-dir DIR` in a subprocess): launch → ready,
     RSS at ready and peak RSS under load (and, for comparison, RSS of the same service on the built-in set);
  4. throughput with 64 concurrent sessions for a fixed time, replaying expert trajectories computed
     locally (only /step is timed), then an agent-like mix where each episode first searches the whole
     question text (a miss, so BM25 ranks similar titles): steps/s, p50/p99 step latency.

Usage: python bench/bench_qa.py [--data-dir ../shared/data/qa | --builtin] [--seconds 15] [--concurrency 64]
Bounded: every phase has a deadline; the server is stopped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import sys
import threading
import time
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import free_port, launch_env, pct, replay, rss_mb, stop
from clients.env_client import AsyncEnvClient
from envs.qa.data import QaData
from envs.qa.env import QaEnv
from envs.qa.evaluate import run_expert

DEFAULT_DATA = ROOT.parent / "shared" / "data" / "qa"


def build_time(data_dir: Path | None, repeats: int = 3) -> tuple[float, QaData]:
    times, data = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        data = QaEnv.load(data_dir)
        times.append(time.perf_counter() - t0)
    assert data is not None
    return statistics.median(times), data


def search_latency(data: QaData, n: int = 1000) -> dict[str, tuple[float, float]]:
    rng = random.Random(0)
    env = QaEnv(data)
    env.reset(task_id=data.task_ids()[0])
    titles = [p.title for p in rng.sample(data.corpus.pages, min(n, len(data.corpus)))]
    questions = [data.gold[t].question for t in rng.choices(data.task_ids(), k=n)]
    out = {}
    for label, queries in (("exact title", titles), ("miss (BM25 similar)", questions)):
        lat = []
        for q in queries:
            t0 = time.perf_counter()
            r = env.step(f"search[{q}]")
            lat.append(time.perf_counter() - t0)
            env.turns = 0  # stay under the turn limit; the episode never ends on search
            assert r.info["found"] == (label == "exact title"), (q, r.observation[:80])
        out[label] = (1000 * statistics.median(lat), pct(lat, 0.99, last_rank=True))
    return out


def expert_trajectories(data: QaData) -> list[tuple[str, str, list[str]]]:
    env = QaEnv(data)
    out = []
    for task_id in data.task_ids():
        env.reset(task_id=task_id)
        actions = []
        while not env.done:
            actions.append(env.expert_action())
            env.step(actions[-1])
        out.append((task_id, data.gold[task_id].question, actions))
    return out


class PeakRss:
    """Polls a process's RSS in a thread; `peak` is the largest value seen."""

    def __init__(self, pid: int) -> None:
        self.pid, self.peak, self._stop = pid, rss_mb(pid), threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.1):
            self.peak = max(self.peak, rss_mb(self.pid))

    def stop(self) -> float:
        self._stop.set()
        self._thread.join()
        return self.peak


async def throughput(url: str, trajectories: list[tuple[str, str, list[str]]], concurrency: int, seconds: float,
                     miss_first: bool) -> dict[str, float]:
    episodes = [(task_id, ([f"search[{question}]"] if miss_first else []) + actions) for task_id, question, actions in trajectories]
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as http, AsyncEnvClient(url, session=http) as client:
        return await replay(client, episodes, concurrency, seconds)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", type=Path, default=DEFAULT_DATA if DEFAULT_DATA.is_dir() else None)
    ap.add_argument("--builtin", action="store_true", help="use the built-in question set and corpus")
    ap.add_argument("--seconds", type=float, default=15.0)
    ap.add_argument("--concurrency", type=int, default=64)
    args = ap.parse_args()
    data_dir = None if args.builtin else args.data_dir
    print(f"data: {data_dir or 'built-in set'}; cpus: {os.cpu_count()}; load avg: {os.getloadavg()[0]:.2f}")

    seconds, data = build_time(data_dir)
    print(f"index build (load + sentence split + BM25), median of 3: {seconds:.2f} s; "
          f"{len(data.tasks)} questions, {len(data.corpus)} pages")
    for label, (p50, p99) in search_latency(data).items():
        print(f"search latency in-process, {label}: p50 {p50:.2f} ms, p99 {p99:.2f} ms")
    print(run_expert(data, data.task_ids()).summary())
    t0 = time.perf_counter()
    trajectories = expert_trajectories(data)
    mean_len = statistics.mean(len(a) for _, _, a in trajectories)
    print(f"expert trajectories computed locally: {len(trajectories)} in {time.perf_counter() - t0:.1f} s "
          f"(mean {mean_len:.2f} actions)")
    del data

    if data_dir is not None:  # the same service on the tiny built-in set: the RSS baseline without the corpus
        base, _ = launch_env("qa", None, free_port(), timeout=90, interval=0.05)
        try:
            time.sleep(0.5)
            print(f"service RSS baseline (built-in set, 116 pages): {rss_mb(base.pid):.1f} MB")
        finally:
            stop(base)
    port = free_port()
    proc, start_s = launch_env("qa", data_dir, port, timeout=90, interval=0.05)
    url = f"http://127.0.0.1:{port}"
    try:
        print(f"service start (launch → ready): {start_s:.2f} s; RSS at ready: {rss_mb(proc.pid):.1f} MB")
        peak = PeakRss(proc.pid)
        for miss_first, label in ((False, "expert trajectories"), (True, "question-text search (miss) + expert")):
            r = asyncio.run(throughput(url, trajectories, args.concurrency, args.seconds, miss_first))
            print(f"{args.concurrency} concurrent sessions, {label}, {r['seconds']:.1f} s: {r['steps']} steps, "
                  f"{r['episodes']} episodes (all reward 1): {r['steps_per_s']:.0f} steps/s, "
                  f"p50 {r['p50_ms']:.1f} ms, p99 {r['p99_ms']:.1f} ms")
        print(f"service RSS: after the runs {rss_mb(proc.pid):.1f} MB, peak {peak.stop():.1f} MB")
    finally:
        stop(proc)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
