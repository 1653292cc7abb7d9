"""Victim step latency on the SQL env while attacker sessions run the worst queries found (issue 20).

`python -m services.cli serve sql` (SQLite) and `serve envs.sql.postgres:SqlPostgresEnv` in a subprocess,
default limits (3 s per action, kill 2 s later). For A in 0, 4, 16 attackers: each attacker loops
open a session → run the attack → close, where the attacks are, in turn,
  * SQLite: ``ltrim`` of a 200,000-char string by an 80,000-char set (one VM instruction, ~minutes
    unstopped) and a data-change ``commit`` over a VIRTUAL generated column that costs CPU at each read;
  * PostgreSQL: ``LIKE`` of a 250,000-char string against a 60,000-char pattern (no interrupt checks;
    ``btrim`` of the same is refused since EXECUTE is revoked) and a ``commit`` whose table has a
    row-security policy calling ``pg_sleep``;
while V victim sessions each step ``execute[SELECT 'n', COUNT(*) FROM orders]`` back to back (a new
session every 15 steps). The runs alternate (0, 4, 16, 0, 4, 16, ...: `--rounds` times) so that other
load on the machine weighs on each alike. Reported: victim step p50/p99 (and session creation p50), attacker steps and
their longest time, sessions refused (PostgreSQL refuses new sessions while `max_stuck` statements of
ended sessions still run on the server). Between runs the PostgreSQL server is left to finish those.

    python bench/bench_sql_attack.py [--seconds 12] [--rounds 3] [--victims 4] [--attackers 0 4 16] [--backend sqlite postgres]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import free_port, launch_env, pct, stop

QUERY_TASK = "builtin-shop-orders_of-00"
MUTATION_TASK = "builtin-shop-purge_cancelled-00"
VICTIM_SQL = "SELECT 'n', COUNT(*) FROM orders"
ATTACKS = {
    "sqlite": [
        (QUERY_TASK, ["SELECT ltrim(printf('%.*c', 200000, 'a'), printf('%.*c', 80000, 'b') || 'a')"], False),
        (MUTATION_TASK, ["ALTER TABLE orders ADD COLUMN g TEXT AS (ltrim(printf('%.*c', 20000 + customer_id, 'a'), "
                         "printf('%.*c', 20000, 'b') || 'a')) VIRTUAL"], True),
    ],
    "postgres": [
        (QUERY_TASK, ["SELECT repeat('a', 250000) LIKE '%' || repeat('a', 60000) || 'b'"], False),
        (MUTATION_TASK, ["ALTER TABLE orders ENABLE ROW LEVEL SECURITY; ALTER TABLE orders FORCE ROW LEVEL SECURITY; "
                         "CREATE POLICY p ON orders USING (pg_sleep(0.1) IS NOT NULL)"], True),
    ],
}
ENV = {"sqlite": "sql", "postgres": "envs.sql.postgres:SqlPostgresEnv"}


class Stats:
    def __init__(self) -> None:
        self.victim: list[float] = []
        self.create: list[float] = []
        self.attack: list[float] = []
        self.refused = 0
        self.errors: list[str] = []


async def _open(http: httpx.AsyncClient, task: str, stats: Stats) -> str | None:
    resp = await http.post("/v1/sessions", json={"task_id": task})
    if resp.status_code in (409, 429):
        stats.refused += 1
        await asyncio.sleep(0.2)
        return None
    resp.raise_for_status()
    return str(resp.json()["session_id"])


async def attacker(url: str, backend: str, index: int, until: float, stats: Stats) -> None:
    async with httpx.AsyncClient(base_url=url, timeout=120) as http:
        n = index
        while time.monotonic() < until:
            task, setup, commit = ATTACKS[backend][n % len(ATTACKS[backend])]
            n += 1
            sid = await _open(http, task, stats)
            if sid is None:
                continue
            try:
                for sql in setup[:-1] if not commit else setup:
                    await http.post(f"/v1/sessions/{sid}/step", json={"action": f"execute[{sql}]"})
                action = "commit" if commit else f"execute[{setup[-1]}]"
                started = time.monotonic()
                resp = await http.post(f"/v1/sessions/{sid}/step", json={"action": action})
                stats.attack.append(time.monotonic() - started)
                if resp.status_code != 200 or not resp.json()["done"]:
                    stats.errors.append(f"attack {action[:40]}: {resp.status_code} {resp.text[:120]}")
            finally:
                await http.delete(f"/v1/sessions/{sid}")


async def victim(url: str, measure_from: float, until: float, stats: Stats) -> None:
    async with httpx.AsyncClient(base_url=url, timeout=120) as http:
        while time.monotonic() < until:
            started = time.monotonic()
            sid = await _open(http, QUERY_TASK, stats)
            if sid is None:
                continue
            if started >= measure_from:
                stats.create.append(time.monotonic() - started)
            for _ in range(15):
                if time.monotonic() >= until:
                    break
                started = time.monotonic()
                resp = await http.post(f"/v1/sessions/{sid}/step", json={"action": f"execute[{VICTIM_SQL}]"})
                elapsed = time.monotonic() - started
                if resp.status_code != 200 or "| 300" not in resp.json()["observation"]:
                    stats.errors.append(f"victim: {resp.status_code} {resp.text[:120]}")
                elif started >= measure_from:
                    stats.victim.append(elapsed)
            await http.delete(f"/v1/sessions/{sid}")


async def run(url: str, backend: str, attackers: int, victims: int, seconds: float) -> Stats:
    stats = Stats()
    start = time.monotonic()
    measure_from = start + (3.0 if attackers else 1.0)  # attacks in full swing
    until = measure_from + seconds
    tasks = [attacker(url, backend, i, until, stats) for i in range(attackers)]
    tasks += [victim(url, measure_from, until, stats) for _ in range(victims)]
    await asyncio.gather(*tasks)
    return stats


def wait_postgres_idle(timeout: float = 300.0) -> float:
    """Seconds until no statement of an env session still runs on the server."""
    import psycopg

    started = time.monotonic()
    with psycopg.connect("host=127.0.0.1 port=5432 user=postgres dbname=test", autocommit=True) as conn:
        while time.monotonic() - started < timeout:
            (busy,) = conn.execute("SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE 'trajgym\\_sql\\_%' "
                                   "AND state = 'active'").fetchone()  # type: ignore[misc]  # (its role may be dropped already)
            if not busy:
                break
            time.sleep(1)
    return time.monotonic() - started


def merge(into: Stats, part: Stats) -> None:
    into.victim += part.victim
    into.create += part.create
    into.attack += part.attack
    into.refused += part.refused
    into.errors += part.errors


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=12.0, help="measured seconds per configuration, over all rounds")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--victims", type=int, default=4)
    parser.add_argument("--attackers", type=int, nargs="+", default=[0, 4, 16])
    parser.add_argument("--backend", nargs="+", default=["sqlite", "postgres"], choices=sorted(ENV))
    args = parser.parse_args()
    print(f"{args.victims} victim sessions, {args.seconds:g} s measured per configuration in {args.rounds} rounds\n")
    print("| backend | attackers | victim steps | victim p50 | victim p99 | create p50 | attacker steps | longest attacker step "
          "| sessions refused | errors |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for backend in args.backend:
        port = free_port()
        proc, _ = launch_env(ENV[backend], None, port)
        totals = {a: Stats() for a in args.attackers}
        try:
            for _ in range(args.rounds):
                for attackers in args.attackers:
                    if backend == "postgres":
                        wait_postgres_idle()
                    part = asyncio.run(run(f"http://127.0.0.1:{port}", backend, attackers, args.victims, args.seconds / args.rounds))
                    merge(totals[attackers], part)
        finally:
            stop(proc)
        for attackers, stats in totals.items():
            longest = f"{max(stats.attack):.2f} s" if stats.attack else "-"
            print(f"| {backend} | {attackers} | {len(stats.victim)} | {pct(stats.victim, 0.5):.1f} ms | {pct(stats.victim, 0.99):.1f} ms "
                  f"| {pct(stats.create, 0.5):.1f} ms | {len(stats.attack)} | {longest} | {stats.refused} | {len(stats.errors)} |",
                  flush=True)
            for err in stats.errors[:3]:
                print(f"    {err}", file=sys.stderr)
    if "postgres" in args.backend:
        print(f"\nPostgreSQL idle again {wait_postgres_idle():.0f} s after the last run")


if __name__ == "__main__":
    main()
