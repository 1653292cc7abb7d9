"""Collector throughput: turns/s and collector CPU time per turn at 1, 100, 1,000 and 10,000 episodes in flight.

An instant model endpoint (canned ReAct reply, token ids + logprobs) and a light env
(every action accepted, episodes of `--turns` steps) run in one server subprocess on
aiohttp.web, so the figures are the collector's: HTTP clients, prompt building, parsing,
pydantic, SQLite commits. `--env-service` swaps the light env for the real generic env
service (`services.app.create_app`, FastAPI/uvicorn) serving a trivial env. Each row also
measures a bare aiohttp client against the same endpoint at the same concurrency, as the
ceiling of what any collector could do on this machine. The *GC ms/turn* column is the
collector's time (thread CPU) inside the cyclic garbage collector, from `gc.callbacks`.

For 10,000 in flight the bench raises its open-file limit (each in-flight request holds a
socket, in the collector and in the servers, and the servers inherit the limit), serves as many
tasks as the largest row needs, and with `--env-service` starts the env service with
`--max-sessions`, `--max-sessions-per-client` and `--max-sessions-per-address` all at twice the
largest row (every session of the bench comes from one client id on one address).
`--profile DIR` records each row's collection with py-spy (the `bench` extra) into
DIR/collector-N.txt (collapsed stacks) and prints the top functions; py-spy charges the cyclic
GC's time to whatever line allocated when it ran, hence the separate GC column.
`--model-faults SHARE` makes the instant model answer that share of requests with a 500 or a
dropped connection (alternately; rows then print their outcome counts), and `--default-gc` runs
the collector under CPython's GC defaults instead of `collector.gcpolicy`, for comparison.

    python bench/bench_collector.py                       # 1, 100, 1000, 10000 in flight
    python bench/bench_collector.py --concurrency 1,100 --env-service
    python bench/bench_collector.py --concurrency 10000 --profile /tmp/prof
    python bench/bench_collector.py --concurrency 10000 --episodes 10000 --model-faults 0.5 --default-gc
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402
import psutil  # noqa: E402

from bench.common import free_port, start, stop, wait_ready  # noqa: E402
from collector.config import JobConfig  # noqa: E402
from collector.collect import Collector  # noqa: E402
from envs.base import Env, EnvData  # noqa: E402
from envs.types import Action, Split, StepResult, TaskSpec, ToolParam, ToolSpec  # noqa: E402

TURNS = int(os.environ.get("BENCH_TURNS", "10"))
MODEL_FAULTS = float(os.environ.get("BENCH_MODEL_FAULTS", "0"))  # share of model requests answered 500 or dropped
N_TASKS = int(os.environ.get("BENCH_TASKS", "4000"))


# ----- the light env, as an Env class (for --env-service) ---------------------------------
class LightData(EnvData):
    def __init__(self) -> None:
        super().__init__([TaskSpec(task_id=f"t{i}", split=Split.test, instruction="Go.") for i in range(N_TASKS)])


class LightEnv(Env[LightData]):
    name = "light"
    description = "Every action is accepted; an episode lasts BENCH_TURNS steps."
    max_turns = 1000
    step_in_thread = False
    tools = [ToolSpec(name="noop", description="Do nothing.", params=[ToolParam(name="x")], text_template="noop[{x}]")]

    @classmethod
    def load(cls, data_dir: Path | None = None) -> LightData:
        return LightData()

    def start(self, task: TaskSpec) -> str:
        return "Start."

    def act(self, action: Action) -> StepResult:
        done = self.turns + 1 >= TURNS
        return StepResult(observation=f"Step {self.turns + 1}.", reward=1.0 if done else 0.0, done=done,
                          info={"success": True} if done else {})


# ----- the server subprocess: instant model + light env on aiohttp.web ------------------
REPLY = "Thought: keep going.\nAction: noop[1]"


def _completion() -> bytes:
    words = REPLY.split()
    return json.dumps({
        "id": "c", "object": "chat.completion", "model": "instant",
        "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": REPLY},
                     "token_ids": list(range(100, 100 + len(words))),
                     "logprobs": {"content": [{"token": w, "logprob": -0.1, "top_logprobs": []} for w in words]}}],
        "prompt_token_ids": list(range(60)),
        "usage": {"prompt_tokens": 60, "completion_tokens": len(words), "total_tokens": 60 + len(words)},
    }).encode()


def serve(model_port: int, env_port: int) -> None:
    import uvloop
    from aiohttp import web

    completion = _completion()
    sessions: dict[str, int] = {}
    counter = [0]
    info = json.dumps({"name": "light", "version": "0", "description": "light", "action_formats": ["text"],
                       "tools": [LightEnv.tools[0].json_schema()], "text_actions": ["noop[{x}]"], "max_turns": 1000,
                       "has_expert": False, "has_progress": False, "task_counts": {"train": 0, "dev": 0, "test": N_TASKS},
                       "system_prompt": ""}).encode()

    served = [0]
    faults = [0]

    async def chat(request: web.Request) -> web.Response:
        await request.read()
        served[0] += 1
        if int(served[0] * MODEL_FAULTS) != int((served[0] - 1) * MODEL_FAULTS):  # every 1/MODEL_FAULTS-th request
            faults[0] += 1
            if faults[0] % 2 == 0 and request.transport is not None:
                request.transport.close()  # the connection dropped before the answer: a transport error
            return web.Response(status=500, body=b'{"error": "injected fault"}', content_type="application/json")
        return web.Response(body=completion, content_type="application/json")

    async def models(_: web.Request) -> web.Response:
        return web.json_response({"data": [{"id": "instant"}]})

    async def get_info(_: web.Request) -> web.Response:
        return web.Response(body=info, content_type="application/json")

    async def tasks(request: web.Request) -> web.Response:
        offset, limit = int(request.query.get("offset", 0)), int(request.query.get("limit", 100))
        ids = range(offset, min(N_TASKS, offset + limit))
        return web.json_response({"total": N_TASKS, "tasks": [{"task_id": f"t{i}", "split": "test", "instruction": "Go."} for i in ids]})

    async def create(request: web.Request) -> web.Response:
        body = await request.json()
        counter[0] += 1
        sid = f"s{counter[0]}"
        sessions[sid] = 0
        return web.json_response({"session_id": sid, "task_id": body["task_id"], "instruction": "Go.", "observation": "Start."},
                                 status=201)

    async def step(request: web.Request) -> web.Response:
        await request.read()
        sid = request.match_info["sid"]
        turn = sessions[sid] = sessions[sid] + 1
        done = turn >= TURNS
        return web.json_response({"observation": f"Step {turn}.", "reward": 1.0 if done else 0.0, "done": done,
                                  "info": {"success": True} if done else {}, "turn": turn})

    async def close(request: web.Request) -> web.Response:
        sid = request.match_info["sid"]
        sessions.pop(sid, None)
        return web.json_response({"session_id": sid, "closed": True})

    model_app = web.Application()
    model_app.router.add_post("/v1/chat/completions", chat)
    model_app.router.add_get("/v1/models", models)
    env_app = web.Application()
    env_app.router.add_get("/v1/info", get_info)
    env_app.router.add_get("/v1/tasks", tasks)
    env_app.router.add_post("/v1/sessions", create)
    env_app.router.add_post("/v1/sessions/{sid}/step", step)
    env_app.router.add_delete("/v1/sessions/{sid}", close)
    env_app.router.add_get("/healthz", models)

    async def main() -> None:
        runners = []
        for app, port in ((model_app, model_port), (env_app, env_port)):
            runner = web.AppRunner(app, access_log=None, handle_signals=False)
            await runner.setup()
            await web.TCPSite(runner, "127.0.0.1", port, backlog=4096).start()
            runners.append(runner)
        print("ready", flush=True)
        await asyncio.Event().wait()

    uvloop.run(main())


# ----- the bench driver -----------------------------------------------------------------
def raise_fd_limit(want: int) -> int:
    """RLIMIT_NOFILE soft (and, with the rights, hard) limit to at least `want`; the soft limit now."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= want:
        return soft
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, max(hard, want)))
    except (ValueError, OSError):  # no CAP_SYS_RESOURCE: up to the hard limit
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


class GcTimer:
    """Thread CPU seconds spent in the cyclic GC (any thread of this process) while installed."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.collections = [0, 0, 0]
        self._start: dict[int, float] = {}

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        import threading

        tid = threading.get_ident()
        if phase == "start":
            self._start[tid] = time.thread_time()
        elif tid in self._start:
            self.seconds += time.thread_time() - self._start.pop(tid)
            self.collections[info["generation"]] += 1

    def __enter__(self) -> GcTimer:
        gc.callbacks.append(self)
        return self

    def __exit__(self, *exc: object) -> None:
        gc.callbacks.remove(self)


async def bare_client(url: str, concurrency: int, n: int) -> tuple[float, float]:
    """(requests/s, client CPU ms/request) of a bare pooled aiohttp client against the instant endpoint."""
    body = {"model": "instant", "messages": [{"role": "user", "content": "hi"}]}
    conn = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=conn) as http:
        remaining = [n]

        async def worker() -> None:
            while remaining[0] > 0:
                remaining[0] -= 1
                async with http.post(url + "/v1/chat/completions", json=body) as resp:
                    await resp.read()

        proc = psutil.Process()
        cpu0 = sum(proc.cpu_times()[:2])
        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        wall = time.perf_counter() - t0
        return n / wall, (sum(proc.cpu_times()[:2]) - cpu0) * 1000 / n


async def collect_once(env_url: str, model_url: str, concurrency: int, episodes: int, store: str,
                       servers: list[psutil.Process]) -> dict[str, Any]:
    """One run; CPU is the whole run's (store open, migration check, task listing included), imports excluded."""
    job = JobConfig(run_name=f"bench-{concurrency}", env=env_url, model=model_url, store=store, split="test",
                    limit=episodes, samples=1, concurrency=concurrency, max_turns=TURNS + 5, extras="on")
    proc = psutil.Process()
    collector = Collector(job)
    with GcTimer() as gct:
        cpu0 = sum(proc.cpu_times()[:2])
        srv0 = sum(sum(p.cpu_times()[:2]) for p in servers)
        t0 = time.perf_counter()
        summary = await collector.run()
        wall = time.perf_counter() - t0
        cpu = sum(proc.cpu_times()[:2]) - cpu0
        srv = sum(sum(p.cpu_times()[:2]) for p in servers) - srv0
    turns = summary.stats.turns
    if MODEL_FAULTS:  # retried model calls; an episode whose calls kept failing is an infra error, nothing else
        assert set(summary.counts) <= {"success", "infra_error"} and sum(summary.counts.values()) == episodes, summary.counts
    else:
        assert os.environ.get("BENCH_NO_CHECK") or summary.counts == {"success": episodes}, summary.counts
    return {"concurrency": concurrency, "episodes": episodes, "counts": summary.counts, "turns": turns, "wall_s": wall, "turns_per_s": turns / wall,
            "cpu_ms_per_turn": cpu * 1000 / turns, "gc_ms_per_turn": gct.seconds * 1000 / turns,
            "gc_collections": gct.collections, "server_ms_per_turn": srv * 1000 / turns, "rss_mb": proc.memory_info().rss / 2**20}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--concurrency", "--in-flight", default="1,100,1000,10000",
                    help="episodes in flight, one row each (comma-separated)")
    ap.add_argument("--episodes", default="", help="episodes per row, comma-separated (default: 300 at 1 in flight, "
                                                   "3 × in flight up to 1,000, 2 × in flight above)")
    ap.add_argument("--profile", type=Path, metavar="DIR", help="record each row with py-spy into DIR/collector-N.txt")
    ap.add_argument("--model-faults", type=float, default=0.0, metavar="SHARE",
                    help="share of model requests answered 500 or dropped (alternately); rows then report outcome counts")
    ap.add_argument("--default-gc", action="store_true",
                    help="run the collector under CPython's GC defaults (without collector.gcpolicy), for comparison")
    ap.add_argument("--env-service", action="store_true", help="use the real env service (create_app/uvicorn) for the env")
    ap.add_argument("--serve", nargs=2, type=int, metavar=("MODEL_PORT", "ENV_PORT"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve:
        serve(*args.serve)
        return
    import uvloop

    levels = [int(x) for x in args.concurrency.split(",")]
    counts = ([int(x) for x in args.episodes.split(",")] if args.episodes
              else [300 if c == 1 else 3 * c if c <= 1000 else 2 * c for c in levels])
    if len(counts) != len(levels):
        ap.error("--episodes needs one count per --concurrency level")
    if not 0.0 <= args.model_faults < 1.0:
        ap.error("--model-faults is a share in [0, 1)")
    os.environ["BENCH_MODEL_FAULTS"] = str(args.model_faults)  # the server subprocess reads it
    global MODEL_FAULTS
    MODEL_FAULTS = args.model_faults
    if args.default_gc:
        import contextlib

        import collector.collect

        collector.collect.run_gc = contextlib.nullcontext  # type: ignore[assignment]
    fds = raise_fd_limit(4 * max(levels) + 1024)  # collector: 2 sockets per episode at most, servers the same
    os.environ["BENCH_TASKS"] = str(max(N_TASKS, *counts))  # the servers inherit it (they serve that many tasks)
    sessions = str(max(8192, 2 * max(levels)))
    if args.profile:
        args.profile.mkdir(parents=True, exist_ok=True)
    model_port, env_port = free_port(), free_port()
    procs = [start([__file__, "--serve", str(model_port), str(env_port)], stderr=None)]
    env_url = f"http://127.0.0.1:{env_port}"
    if args.env_service:
        env_port = free_port()
        env_url = f"http://127.0.0.1:{env_port}"
        procs.append(start(["-m", "cli.main", "serve", "bench.bench_collector:LightEnv", "--port", str(env_port),
                            "--max-sessions", sessions, "--max-sessions-per-client", sessions,
                            "--max-sessions-per-address", sessions], stderr=None))
    model_url = f"http://127.0.0.1:{model_port}"
    try:
        wait_ready(model_url + "/v1/models")
        wait_ready(env_url + "/healthz")
        print(f"machine: {os.cpu_count()} cores; {TURNS} turns/episode; env: "
              f"{'env service (create_app, uvicorn)' if args.env_service else 'light aiohttp env'}; store: SQLite (WAL)"
              + (f"; model faults {args.model_faults:.0%}" if args.model_faults else "")
              + ("; GC: CPython defaults" if args.default_gc else "; GC: collector.gcpolicy"))
        print(f"load average before: {os.getloadavg()[0]:.1f}; open-file limit {fds}"
              + (f"; env service --max-sessions{{,-per-client,-per-address}} {sessions}" if args.env_service else ""))
        print(f"{'in flight':>9} {'episodes':>8} {'turns':>7} {'wall s':>7} {'turns/s':>8} {'collector ms/turn':>17} "
              f"{'GC ms/turn':>10} {'servers ms/turn':>15} {'RSS MB':>7} {'bare req/s':>10} {'bare ms/req':>11}")
        servers = [psutil.Process(p.pid) for p in procs]
        profiles: list[Path] = []
        with tempfile.TemporaryDirectory() as tmp:
            for c, n in zip(levels, counts):
                run = collect_once(env_url, model_url, c, n, str(Path(tmp) / f"bench-{c}.db"), servers)
                if args.profile:
                    from bench.pyspy import recording

                    profiles.append(args.profile / f"collector-{c}.txt")
                    with recording(profiles[-1]):
                        row = uvloop.run(run)
                else:
                    row = uvloop.run(run)
                bare, bare_cpu = (float("nan"), float("nan")) if args.model_faults else (  # a faulty endpoint: no floor
                    uvloop.run(bare_client(model_url, c, max(2000, 2 * c))))
                print(f"{c:>9} {n:>8} {row['turns']:>7} {row['wall_s']:>7.2f} {row['turns_per_s']:>8.0f} "
                      f"{row['cpu_ms_per_turn']:>17.3f} {row['gc_ms_per_turn']:>10.3f} {row['server_ms_per_turn']:>15.3f} "
                      f"{row['rss_mb']:>7.0f} {bare:>10.0f} {bare_cpu:>11.3f}"
                      + (f"  {row['counts']}" if args.model_faults else ""), flush=True)
        print(f"load average after: {os.getloadavg()[0]:.1f}; this process's peak RSS "
              f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")
        if profiles:
            from bench.pyspy import summary

            for path in profiles:
                print(summary(path))
    finally:
        stop(*procs)


if __name__ == "__main__":
    main()
