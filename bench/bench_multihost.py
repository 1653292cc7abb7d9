"""Episodes/s across separate network hosts: 1 vs 2 env hosts × 1 vs 2 collector hosts.

`python bench/bench_multihost.py [--policy expert|model|both] [--samples N] [--concurrency N]` (root;
about 2-3 minutes for both policies). Reuses the multi-host test harness (`tests/support/netns.py`,
`tests/support/multihost.py`): host A runs PostgreSQL and the hub, B and C a counter env replica each
(self-registered), D and E a model stub and `trajgym collect` of one run per configuration. For the
1-env-host configurations C's replica is stopped (it leaves the hub). Episodes/s is the run's stored
episodes over the span from the first episode's start to the last one's end (process start-up and
the final commit excluded).

Two workloads: `expert` (the env's expert picks every action: bound by CPU — on one machine every
"host" shares the same cores) and `model` (the scripted OpenAI-compatible stub answers each turn after
`--model-delay` s, like a model server: bound by episodes in flight, i.e. collector concurrency).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.support import netns, pg_cluster  # noqa: E402
from tests.support.multihost import TASKS, Deployment  # noqa: E402
from tests.support.netns import Network  # noqa: E402
from tests.support.pg_cluster import PgCluster  # noqa: E402

CONFIGS = ((2, 2), (2, 1), (1, 2), (1, 1))  # (env hosts, collector hosts); C is stopped before the 1-env runs


def measure(d: Deployment, run: str, collectors: list[str], *, policy: str, samples: int, concurrency: int) -> dict[str, float]:
    t0 = time.monotonic()
    procs = [d.collect(h, run, samples=samples, concurrency=concurrency, policy=policy) for h in collectors]
    for proc in procs:
        code = proc.wait(timeout=900)
        if code != 0:
            raise RuntimeError(f"collector exited {code}\n{proc.tail(40)}")
    wall = time.monotonic() - t0
    episodes = d.episodes(run)
    done = [e for e in episodes if e["status"] == "done" and e["outcome"] == "success"]
    span = (max(e["finished_at"] for e in done) - min(e["started_at"] for e in done)).total_seconds()
    return {"episodes": len(done), "total": len(episodes), "span_s": span, "eps_per_s": len(done) / span, "wall_s": wall}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--policy", choices=("expert", "model", "both"), default="both")
    parser.add_argument("--samples", type=int, default=0, help="samples per task (default: 24 expert, 4 model)")
    parser.add_argument("--concurrency", type=int, default=8, help="episodes in flight per collector")
    parser.add_argument("--model-delay", type=float, default=0.25, help="seconds the model stub takes per turn")
    args = parser.parse_args()
    reason = netns.why_unavailable() or pg_cluster.why_unavailable()
    if reason:
        print(f"bench_multihost: {reason}", file=sys.stderr)
        return 2
    policies = ("expert", "model") if args.policy == "both" else (args.policy,)
    net = Network("tgbench", ("A", "B", "C", "D", "E"), subnet="10.232.0",
                  log_dir=Path(tempfile.mkdtemp(prefix="trajgym-bench-multihost-")))
    pg = PgCluster(net, "A", prefix="trajgym-pgbench")
    rows: list[tuple[str, int, int, dict[str, float]]] = []
    try:
        net.create()
        pg.remove_leftovers()
        pg.start()
        d = Deployment(net, pg.create_database("bench"), model_delay=args.model_delay)
        try:
            d.start()
            for n_env, n_coll in CONFIGS:
                if n_env == 1 and d.replicas["C"].alive():
                    d.replicas["C"].stop()
                    d.wait_until(lambda: d.replica_url("C") not in d.replica_status(), 60, "C's replica left the hub")
                for policy in policies:
                    samples = args.samples or (24 if policy == "expert" else 4)
                    run = f"{policy}-{n_env}env-{n_coll}coll"
                    fig = measure(d, run, d.collector_hosts[:n_coll], policy=policy, samples=samples,
                                  concurrency=args.concurrency)
                    rows.append((policy, n_env, n_coll, fig))
                    print(f"{policy:6s} env hosts {n_env} · collector hosts {n_coll}: {fig['episodes']}/{len(TASKS) * samples} "
                          f"episodes in {fig['span_s']:.1f} s = {fig['eps_per_s']:.1f} episodes/s (wall {fig['wall_s']:.1f} s)",
                          flush=True)
        finally:
            d.stop()
    finally:
        pg.stop()
        net.destroy()
    print("\n| policy | env hosts | collector hosts | episodes | span (s) | episodes/s |\n|---|---|---|---|---|---|")
    for policy, n_env, n_coll, fig in sorted(rows, key=lambda r: (r[0], r[1], r[2])):
        print(f"| {policy} | {n_env} | {n_coll} | {fig['episodes']} | {fig['span_s']:.1f} | {fig['eps_per_s']:.1f} |")
    print(f"\nconcurrency {args.concurrency} per collector, model delay {args.model_delay} s, "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
