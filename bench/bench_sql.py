"""SQL env figures: session creation (database copy), steps/s at 64 concurrent sessions, memory per session.

1. In process: time to copy a database for a session — `deserialize` of the shared
   serialized template (what the env does) vs the sqlite3 backup API vs a temp-file
   copy — for the largest Spider database (world_1) and the built-in `company`; and
   a full `SqlEnv.reset` (copy + sandbox setup + first observation).
2. Over HTTP: `python -m cli.main serve sql` in a subprocess; 64 concurrent
   sessions driven by `AsyncEnvClient`: (a) expert episodes (create, expert/step until
   done, close), (b) steady `execute[...]` steps of each task's gold query on open
   sessions. Steps/s, p50/p99 step latency.
3. RSS of the server (psutil) before/after opening 256 sessions → memory per session.

    python bench/bench_sql.py [--seconds 10] [--concurrency 64] [--data-dir ../shared/data/sql] [--postgres]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import env_service, expert_episodes, pct, run_workers
from clients.env_client import AsyncEnvClient
from envs.sql.data import SqlData, load_builtin, load_dir
from envs.sql.env import SqlEnv
from envs.sql.sandbox import SandboxDb


def timed(fn, n: int) -> float:  # type: ignore[no-untyped-def]
    started = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - started) / n * 1000


# ----- 1. session creation ---------------------------------------------------------------------
def bench_copy(data: SqlData, key: str, n: int = 300) -> None:
    raw = data.databases[key].data
    src = sqlite3.connect(":memory:")
    src.deserialize(raw)
    tmp = Path(tempfile.mkdtemp())

    def deserialize() -> None:
        c = sqlite3.connect(":memory:", check_same_thread=False)
        c.deserialize(raw)
        c.close()

    def backup() -> None:
        c = sqlite3.connect(":memory:", check_same_thread=False)
        src.backup(c)
        c.close()

    def tempfile_copy() -> None:
        p = tmp / "s.db"
        p.write_bytes(raw)
        c = sqlite3.connect(p, check_same_thread=False)
        c.execute("SELECT 1").fetchone()
        c.close()
        p.unlink()

    def sandbox() -> None:
        SandboxDb(raw, data.limits).close()

    print(f"  {key} ({len(raw) / 1024:.0f} KiB): deserialize {timed(deserialize, n):.3f} ms | backup API {timed(backup, n):.3f} ms | "
          f"temp file {timed(tempfile_copy, n):.3f} ms | SandboxDb (deserialize + sandbox setup) {timed(sandbox, n):.3f} ms")


def bench_reset(data: SqlData, task_ids: list[str], n: int = 300) -> float:
    env = SqlEnv(data)
    i = 0

    def reset() -> None:
        nonlocal i
        env.reset(task_id=task_ids[i % len(task_ids)])
        i += 1

    ms = timed(reset, n)
    env.close()
    return ms


# ----- 2./3. service ------------------------------------------------------------------------------
async def steady_steps(client: AsyncEnvClient, data: SqlData, task_ids: list[str], concurrency: int, seconds: float) -> None:
    lat: list[float] = []
    stop = time.perf_counter() + seconds

    async def worker(w: int) -> None:
        tid = task_ids[w % len(task_ids)]
        action = f"execute[{data.gold[tid].sql}]"
        sid = (await client.create(task_id=tid)).session_id
        while time.perf_counter() < stop:
            t = time.perf_counter()
            step = await client.step(sid, action)
            lat.append(time.perf_counter() - t)
            if step.done:  # turn limit: a fresh session on the same task
                await client.close(sid)
                sid = (await client.create(task_id=tid)).session_id
        await client.close(sid)

    elapsed = await run_workers(worker, concurrency)
    print(f"  steady execute steps (gold query of each task, new session every {SqlEnv.max_turns} steps): "
          f"{len(lat) / elapsed:.0f} steps/s; p50 {pct(lat, .5):.1f} ms, p99 {pct(lat, .99):.1f} ms ({len(lat)} steps)")


async def memory_per_session(client: AsyncEnvClient, pid: int, task_ids: list[str], n: int) -> None:
    proc = psutil.Process(pid)

    async def open_many() -> list[str]:
        ids = [(await client.create(task_id=task_ids[i % len(task_ids)])).session_id for i in range(n)]
        for sid in ids:  # touch each database once
            await client.step(sid, "execute[SELECT COUNT(*) FROM sqlite_master]")
        return ids

    before = proc.memory_info().rss
    ids = await open_many()
    after = proc.memory_info().rss
    for sid in ids:
        await client.close(sid)
    closed = proc.memory_info().rss
    ids = await open_many()  # memory freed by closing is reused: RSS must not grow by as much again
    again = proc.memory_info().rss
    for sid in ids:
        await client.close(sid)
    print(f"  memory: RSS {before / 2**20:.1f} MiB -> {after / 2**20:.1f} MiB with {n} open sessions = "
          f"{(after - before) / n / 1024:.0f} KiB per session; {closed / 2**20:.1f} MiB after closing them "
          f"(the allocator keeps the pages); {again / 2**20:.1f} MiB after opening {n} again")


async def service(label: str, data: SqlData, data_dir: Path | None, task_ids: list[str], mem_tasks: list[str],
                  concurrency: int, seconds: float, env: str = "sql") -> None:
    async with env_service(env, data_dir, max_connections=concurrency * 2, timeout=120) as (client, proc):
        print(f"service ({label}), {concurrency} concurrent sessions, {seconds:g} s per run:")
        await expert_episodes(client, task_ids, concurrency, seconds, "{steps_per_s:.0f} steps/s, {episodes_per_s:.0f} episodes/s "
                              "(each also 1 create + 1 expert GET per step + 1 close)")
        await steady_steps(client, data, [t for t in task_ids if data.gold[t].sql and data.gold[t].kind == "query"],
                           concurrency, seconds)
        if env == "sql":  # on PostgreSQL a session's data lives in the server's backend process, not here
            await memory_per_session(client, proc.pid, mem_tasks, 256)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--data-dir", type=Path, default=ROOT.parent / "shared" / "data" / "sql")
    parser.add_argument("--postgres", action="store_true", help="also measure the PostgreSQL backend (TRAJGYM_SQL_PG_DSN)")
    args = parser.parse_args()
    print(f"python {sys.version.split()[0]}, sqlite {sqlite3.sqlite_version}, {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.2f}")

    builtin = load_builtin()
    real = load_dir(args.data_dir) if args.data_dir.is_dir() else None
    print("session creation (in process, mean of 300):")
    bench_copy(builtin, "builtin/company")
    if real is not None:
        bench_copy(real, "spider/world_1")
    b_ids = builtin.task_ids()
    print(f"  SqlEnv.reset, built-in tasks: {bench_reset(builtin, b_ids):.3f} ms")
    if real is not None:
        world = [t for t in real.task_ids() if real.gold[t].db == "spider/world_1"]
        print(f"  SqlEnv.reset, Spider world_1 tasks: {bench_reset(real, world):.3f} ms")

    asyncio.run(service("built-in tasks", builtin, None, b_ids, b_ids, args.concurrency, args.seconds))
    if real is not None:
        spider = [t for t in real.task_ids() if real.gold[t].source == "spider"]
        asyncio.run(service("Spider tasks; memory on world_1", real, args.data_dir, spider, world, args.concurrency, args.seconds))
    if args.postgres:
        bench_postgres(args, builtin, real)


def bench_postgres(args: argparse.Namespace, builtin: SqlData, real: SqlData | None) -> None:
    from envs.sql.postgres import DEFAULT_DSN, with_postgres

    dsn = os.environ.get("TRAJGYM_SQL_PG_DSN", DEFAULT_DSN)
    pg = with_postgres(load_builtin(), dsn)
    ids = pg.task_ids()
    SqlEnv(pg).reset(task_id=ids[0])  # template schemas are built on first use
    print("PostgreSQL backend (one role + schema per session):")
    print(f"  SqlEnv.reset, built-in tasks: {bench_reset(pg, ids, n=40):.1f} ms (mean of 40)")
    if real is not None:
        bench = with_postgres(load_dir(args.data_dir / "dbbench"), dsn)
        env = SqlEnv(bench)
        ok = {"query": 0, "mutation": 0}
        total = {"query": 0, "mutation": 0}
        for tid in bench.task_ids():
            env.reset(task_id=tid)
            reward = 0.0
            for _ in range(4):
                result = env.step(env.expert_action())
                if result.done:
                    reward = result.reward
                    break
            kind = bench.gold[tid].kind
            ok[kind] += int(reward)
            total[kind] += 1
        env.close()
        bench.backend.close()  # type: ignore[attr-defined]
        print(f"  DB-bench expert on PostgreSQL: SELECT-style {ok['query']}/{total['query']}, "
              f"INSERT/UPDATE {ok['mutation']}/{total['mutation']}")
    pg.backend.close()  # type: ignore[attr-defined]
    asyncio.run(service("PostgreSQL backend, built-in tasks", builtin, None, builtin.task_ids(), [],
                        min(args.concurrency, 64), args.seconds, env="envs.sql.postgres:SqlPostgresEnv"))


if __name__ == "__main__":
    main()
