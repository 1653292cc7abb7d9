"""Benchmark: curate, export and score a 100,000-episode store (SQLite file).

    python bench/bench_export.py [--episodes 100000] [--db /tmp/trajgym_bench_export.db] [--out DIR]

The store is written once through the store's own API (open_run → claim → commit,
as the collector writes it; ~8 turns per episode, 8 samples per task) and reused by
later runs with the same --episodes. Then each step is timed: scoring (`score_run`),
curation (success only + valid format + dedup + best-of-1), and the export of every
finished episode in each format. Prints one line per step and the peak RSS.
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import rss_mb
from collector.export import Curation, ExportFormat, export_runs, select
from tests.support.synthetic_store import EpisodeSpec, build_run
from store import Store
from store.records import TurnRecord

RUN = "bench"
SAMPLES = 8
SYSTEM = ("You are an agent acting in the webshop environment. Find and buy the product that matches the "
          "instruction.\n\nAvailable actions:\n- search[{query}]: search the shop\n- click[{element}]: click a "
          "button or link\n\nWork step by step. At every turn reply with exactly two lines:\nThought: <your "
          "reasoning>\nAction: <one action>\nThen wait for the observation.")


def _episode(rng: random.Random, task: int, sample: int) -> EpisodeSpec:
    steps = rng.randint(2, 8)
    msgs = [TurnRecord(step=0, role="system", content=SYSTEM),
            TurnRecord(step=0, role="user", content=f"Task: i need a red cotton shirt under {task % 90 + 10} dollars"
                                                    f" (goal {task}).\nObservation: WebShop [SEP] Search")]
    executed = 0
    for s in range(steps):
        action = rng.choice(["search[red cotton shirt]", f"click[item-{rng.randint(0, 40)}]", "click[buy now]"])
        msgs.append(TurnRecord(step=executed + 1, role="assistant", content=f"Thought: step {s} looks right.\n"
                               f"Action: {action}", prompt_tokens=400 + 120 * s, completion_tokens=30))
        if rng.random() < 0.05:  # a refused reply answered by feedback
            msgs.append(TurnRecord(step=executed, role="user", content="Invalid action: no such element."))
            continue
        executed += 1
        obs = "Observation: " + " [SEP] ".join(f"item-{rng.randint(0, 999)} cotton shirt ${rng.randint(5, 99)}"
                                               for _ in range(8))
        msgs.append(TurnRecord(step=executed, role="user", content=obs, action=action, observation=obs))
    outcome = rng.choices(["success", "failure", "truncated", "policy_error", "infra_error"],
                          weights=[45, 35, 10, 5, 5])[0]
    if outcome == "infra_error":
        return EpisodeSpec(f"task-{task}", sample=sample, outcome=outcome, reward=None, success=None, messages=[])
    reward = 1.0 if outcome == "success" else round(rng.random() * 0.8, 2)
    return EpisodeSpec(f"task-{task}", sample=sample, outcome=outcome, reward=reward, success=outcome == "success",
                       progress=round(rng.random(), 2), messages=msgs, turns=executed)


def build(db: Path, episodes: int) -> None:
    store = Store(str(db))
    try:
        tasks = episodes // SAMPLES
        rng = random.Random(7)
        specs = [_episode(rng, t, s) for t in range(tasks) for s in range(SAMPLES)]
        split = {t: ("train" if t % 10 < 8 else "dev" if t % 10 == 8 else "test") for t in range(tasks)}
        for sp in specs:
            sp.split = split[int(sp.task_id.split("-")[1])]
        build_run(store, RUN, specs, env="webshop", model="bench-model",
                  tasks=[(f"task-{t}", split[t]) for t in range(tasks)], samples=SAMPLES, batch=5000)
    finally:
        store.close()


def timed(label: str, fn, unit: str = "rows") -> object:  # type: ignore[no-untyped-def]
    t0, c0 = time.perf_counter(), time.process_time()
    result = fn()
    dt, cpu = time.perf_counter() - t0, time.process_time() - c0
    n = getattr(result, "rows", None)
    extra = f"  ({n:,} {unit}, {n / dt:,.0f} {unit}/s)" if isinstance(n, int) else ""
    print(f"{label:<46} {dt:6.2f} s wall {cpu:6.2f} s cpu{extra}  rss {rss_mb():,.0f} MB", flush=True)
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--episodes", type=int, default=100_000)
    ap.add_argument("--db", type=Path, default=None)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    db = args.db or Path(tempfile.gettempdir()) / f"trajgym_bench_export_{args.episodes}.db"
    out = args.out or Path(tempfile.mkdtemp(prefix="trajgym_export_"))
    if not db.exists():
        t0 = time.perf_counter()
        build(db, args.episodes)
        print(f"built store {db} in {time.perf_counter() - t0:.1f} s (through Store.open_run/claim/commit)")
    store = Store(str(db))
    try:
        run_id = store.get_run(RUN)["id"]
        counts = store.progress(run_id)
        with store.engine.begin() as conn:
            turns = conn.exec_driver_sql("SELECT count(*) FROM turns").scalar_one()
        print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cpus")
        print(f"store: {sum(counts.values()):,} episodes {dict(sorted(counts.items()))}, {turns:,} turns, "
              f"{db.stat().st_size / 2**20:,.0f} MB")
        from collector import scoring

        timed("score_run (per env/split, pass@k)", lambda: scoring.score_run(store, run_id))
        if hasattr(scoring, "compare_runs"):
            timed("eval report (eval --json payload)", lambda: scoring.compare_runs(store, [RUN]))
        cur = Curation(success_only=True, valid_format=True, dedup=True, best_of=1)
        _, report = timed("curate: success+valid-format+dedup+best-of-1", lambda: select(store, [RUN], cur))
        print(f"    kept {report.kept:,} of {report.finished:,}: dropped {report.dropped}")
        timed("curate: defaults (no turn reads)", lambda: select(store, [RUN], Curation()))
        for fmt in ExportFormat:
            suffix = {"agentgym": ".jsonl", "messages": ".jsonl", "parquet": ".parquet", "hf": ""}[fmt.value]
            dest = out / f"all_{fmt.value}{suffix}"
            timed(f"export all scored, --format {fmt.value}",
                  lambda fmt=fmt, dest=dest: export_runs(store, [RUN], fmt, dest))
        timed("export curated (as above), --format messages",
              lambda: export_runs(store, [RUN], ExportFormat.messages, out / "curated.jsonl", cur))
        sizes = {p.name: p.stat().st_size if p.is_file() else sum(f.stat().st_size for f in p.rglob("*") if f.is_file())
                 for p in sorted(out.iterdir()) if not p.name.startswith(".")}
        print("outputs: " + ", ".join(f"{k} {v / 2**20:,.0f} MB" for k, v in sizes.items()))
        print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:,.0f} MB")
    finally:
        store.close()


if __name__ == "__main__":
    main()
