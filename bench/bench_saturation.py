"""Does the collector saturate the model server? Generated tokens/s, collector vs. a bare load generator.

Starts the local vLLM CPU server (SmolLM2-135M, `trajgym model setup` first) and the QA
env service. At each concurrency, in one run:
  * load generator — N async workers that only call /v1/chat/completions (aiohttp) with
    the collector's own first prompt, `ignore_eos` and a fixed `max_tokens`;
  * collector — a ReAct collection of 2N episodes × 2 turns with the same sampling.
Both produce exactly `max_tokens` per call, so completion tokens/s compare like for like.
The ratio is collector / load generator (target ≥ 0.9).

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
from collector.engine import Collector  # noqa: E402
from collector.prompts import observation_text, react_system_prompt  # noqa: E402
from envs.qa.env import QaEnv  # noqa: E402
from services.app import create_app  # noqa: E402
from services.model.server import ModelServer, setup  # noqa: E402
from tests.support.server import running_server  # noqa: E402


async def load_generator(url: str, model: str, messages: list[dict], concurrency: int, requests: int, max_tokens: int) -> float:
    tokens = 0
    per_worker = requests // concurrency
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as http:
        async def worker() -> None:
            nonlocal tokens
            for _ in range(per_worker):
                payload = {"model": model, "messages": messages, "max_tokens": max_tokens, "temperature": 0.0,
                           "ignore_eos": True}
                async with http.post(f"{url}/v1/chat/completions", json=payload) as r:
                    body = await r.json()
                    tokens += body["usage"]["completion_tokens"]

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return tokens / (time.perf_counter() - started)


async def collector_rate(model_url: str, env_url: str, concurrency: int, max_tokens: int, db: Path) -> float:
    job = JobConfig(run_name=f"sat-{concurrency}", env=env_url, store=f"sqlite:///{db}", policy=Policy.model, model=model_url,
                    prompt_format=PromptFormat.react, split="all", limit=concurrency, samples=2, max_turns=2,
                    concurrency=concurrency, max_parse_retries=5,
                    sampling=Sampling(max_tokens=max_tokens, extra_body={"ignore_eos": True}))
    collector = Collector(job)
    started = time.perf_counter()
    await collector.run()
    elapsed = time.perf_counter() - started
    completion = collector.stats.tokens  # prompt + completion: recompute completion from the store below
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
    data = QaEnv.load()
    info = QaEnv.info(data)
    env = QaEnv(data)
    first = env.reset(split=None, seed=0)
    messages = [{"role": "system", "content": react_system_prompt(info)},
                {"role": "user", "content": observation_text(first.observation, first.valid_actions, first.instruction)}]
    server = ModelServer()
    with server.running(), running_server(create_app(QaEnv)) as env_url, tempfile.TemporaryDirectory() as tmp:
        await load_generator(server.url, server.served_name, messages, 2, 4, 8)  # warm-up
        print(f"model {server.served_name} on vLLM CPU; {args.max_tokens} tokens per call (ignore_eos)")
        print(f"{'conc':>4} | {'load gen tok/s':>14} | {'collector tok/s':>15} | {'ratio':>5}")
        for c in args.concurrency:
            base = await load_generator(server.url, server.served_name, messages, c, 4 * c, args.max_tokens)
            coll = await collector_rate(server.url, env_url, c, args.max_tokens, Path(tmp) / "sat.db")
            print(f"{c:>4} | {base:>14.1f} | {coll:>15.1f} | {coll / base:>5.2f}", flush=True)


if __name__ == "__main__":
    asyncio.run(main())
