"""Does the collector saturate the model server? Generated tokens/s, collector vs. a bare load generator.

Starts the local vLLM CPU server (SmolLM2-135M, `trajgym model setup` first) and the QA
env service. At each concurrency N, in one run:
  * collector — a ReAct collection of 2N episodes × 2 turns (`ignore_eos`, fixed `max_tokens`);
  * load generator — N async workers (aiohttp) that only call /v1/chat/completions, replaying
    exactly the requests the collector made (the stored conversations, same sampling).
Every call produces exactly `max_tokens`, with the same prompts on both sides, so
completion tokens/s compare like for like. Ratio = collector / load generator (target ≥ 0.9).

    python bench/bench_saturation.py [--concurrency 1 4 8 16] [--max-tokens 48]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from collector.config import JobConfig, Policy, PromptFormat, Sampling  # noqa: E402
from collector.collect import Collector  # noqa: E402
from envs.qa.env import QaEnv  # noqa: E402
from services.app import create_app  # noqa: E402
from services.model.server import ModelServer, setup  # noqa: E402
from tests.support.server import running_server  # noqa: E402


async def load_generator(url: str, model: str, requests: list[list[dict]], concurrency: int, max_tokens: int) -> float:
    tokens = 0
    queue: asyncio.Queue[list[dict]] = asyncio.Queue()
    for messages in requests:
        queue.put_nowait(messages)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as http:
        async def worker() -> None:
            nonlocal tokens
            while not queue.empty():
                payload = {"model": model, "messages": queue.get_nowait(), "max_tokens": max_tokens, "temperature": 0.0,
                           "ignore_eos": True}
                async with http.post(f"{url}/v1/chat/completions", json=payload) as r:
                    body = await r.json()
                    tokens += body["usage"]["completion_tokens"]

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return tokens / (time.perf_counter() - started)


def stored_requests(db: Path, run: str) -> list[list[dict]]:
    """The message list the collector sent for each of its model calls, rebuilt from the store."""
    import json
    import sqlite3

    requests: list[list[dict]] = []
    with sqlite3.connect(db) as conn:
        episodes = [r[0] for r in conn.execute("SELECT e.id FROM episodes e JOIN runs r ON r.id = e.run_id WHERE r.name = ?", (run,))]
        for episode in episodes:
            messages: list[dict] = []
            for role, content, tool_calls in conn.execute(
                    "SELECT role, content, tool_calls FROM turns WHERE episode_id = ? ORDER BY idx", (episode,)):
                if role == "assistant":
                    requests.append(list(messages))
                message = {"role": role, "content": content or ""}
                if tool_calls and json.loads(tool_calls):
                    message["tool_calls"] = json.loads(tool_calls)
                messages.append(message)
    return requests


async def collector_rate(model_url: str, env_url: str, concurrency: int, max_tokens: int, db: Path) -> float:
    job = JobConfig(run_name=f"sat-{concurrency}-{max_tokens}", env=env_url, store=f"sqlite:///{db}", policy=Policy.model, model=model_url,
                    prompt_format=PromptFormat.react, split="all", limit=concurrency, samples=2, max_turns=2,
                    concurrency=concurrency, max_parse_retries=5,
                    sampling=Sampling(max_tokens=max_tokens, extra_body={"ignore_eos": True}))
    collector = Collector(job)
    started = time.perf_counter()
    await collector.run()
    elapsed = time.perf_counter() - started
    from sqlalchemy import create_engine, text

    with create_engine(f"sqlite:///{db}").connect() as conn:
        completion = conn.execute(text("SELECT SUM(completion_tokens) FROM episodes e JOIN runs r ON r.id = e.run_id "
                                       "WHERE r.name = :n"), {"n": job.run_name}).scalar() or 0
    return completion / elapsed


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--concurrency", type=int, nargs="+", default=[1, 4, 8, 16])
    ap.add_argument("--max-tokens", type=int, default=48)
    args = ap.parse_args()
    setup()
    server = ModelServer()
    with server.running(), running_server(create_app(QaEnv)) as env_url, tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "sat.db"
        await collector_rate(server.url, env_url, 2, 8, db)  # warm-up
        print(f"model {server.served_name} on vLLM CPU; {args.max_tokens} tokens per call (ignore_eos)")
        print(f"{'conc':>4} | {'model calls':>11} | {'collector tok/s':>15} | {'load gen tok/s':>14} | {'ratio':>5}")
        for c in args.concurrency:
            coll = await collector_rate(server.url, env_url, c, args.max_tokens, db)
            requests = stored_requests(db, f"sat-{c}-{args.max_tokens}")
            base = await load_generator(server.url, server.served_name, requests, c, args.max_tokens)
            print(f"{c:>4} | {len(requests):>11} | {coll:>15.1f} | {base:>14.1f} | {coll / base:>5.2f}", flush=True)


if __name__ == "__main__":
    asyncio.run(main())
