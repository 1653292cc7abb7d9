"""The collection engine: one asyncio loop, N episodes in flight, claims and commits through the store.

Tasks of one process: a claimer (claims pending episodes in batches into a bounded
queue), N workers (one episode at a time each, no thread per episode), a writer
(commits finished episodes with their turns in batched transactions, each episode
all-or-nothing), and a heartbeat (renews the leases of held claims). Model and env
calls are bounded by one semaphore per endpoint (`ModelClient`, `EnvLink`).
A collector with nothing left to claim waits while other collectors of the run hold
claims: their episodes end as commits, or their leases run out and it claims them (a
collector killed on another machine leaves its work to the others).
`request_stop()` (Ctrl-C) stops claiming, cancels episodes in flight, commits what
finished and releases every other claim back to pending.
For the length of a run the cyclic GC keeps a large young generation and the startup heap
frozen (`collector.gcpolicy`), and the soft open-file limit is raised to what the run's
connections need (`collector.fdlimit`). Task ends wake the supervising loop through one
done-callback each (O(1), where `asyncio.wait` over N workers is O(N) per wake-up).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from collector.config import JobConfig, Policy, PromptFormat
from collector.constrain import structured_outputs
from collector.envlink import EnvLink, open_env_link
from collector.episode import EpisodeContext, run_episode
from collector.fdlimit import ensure_open_files, files_needed
from collector.gcpolicy import run_gc
from collector.model_client import ModelClient
from collector.provenance import run_provenance
from collector.stats import Stats
from store import AsyncStore, ClaimedEpisode, EpisodeRecord, Store, worker_id
from store.connect import safe_url

log = logging.getLogger("trajgym.collector")


class JobError(Exception):
    """The job cannot run as configured (no expert, unknown task ids, empty selection)."""


@dataclass
class RunSummary:
    run_name: str
    run_id: int
    created: bool
    worker: str
    stats: Stats
    counts: dict[str, int] = field(default_factory=dict)
    stopped: bool = False
    requeued: dict[str, int] = field(default_factory=dict)


class Collector:
    def __init__(self, job: JobConfig, *, resume: bool = False, worker: str | None = None,
                 command: list[str] | None = None) -> None:
        self.job = job
        self.resume = resume
        self.command = command  # recorded in the run's provenance (default: this process's argv)
        self.worker = worker or worker_id()
        self.stats = Stats()
        self._stop = asyncio.Event()
        self._held: set[int] = set()
        self._fatal: BaseException | None = None
        self.run_id: int | None = None

    def request_stop(self) -> None:
        self._stop.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    async def _select_tasks(self, env: EnvLink) -> list[tuple[str, str]]:
        job = self.job
        split = None if job.split.value == "all" else job.split.value
        tasks = await env.task_list(split)
        if job.task_ids is not None:
            known = dict(tasks)
            missing = [t for t in job.task_ids if t not in known]
            if missing:
                raise JobError(f"unknown task ids in split {job.split.value}: {missing[:10]}")
            tasks = [(t, known[t]) for t in job.task_ids]
        if job.limit is not None:
            tasks = tasks[: job.limit]
        if not tasks:
            raise JobError(f"no tasks selected (split {job.split.value})")
        return tasks

    async def run(self) -> RunSummary:
        with run_gc():  # the whole run: opening a run of many episodes allocates as much as collecting
            return await self._run()

    async def _run(self) -> RunSummary:
        job = self.job
        ensure_open_files(files_needed(job.model_concurrency or job.concurrency if job.policy is Policy.model else 0,
                                       job.env_concurrency or job.concurrency))
        env = open_env_link(job.env, job.hub, concurrency=job.env_concurrency or job.concurrency, timeout=job.env_timeout)
        model: ModelClient | None = None
        store: AsyncStore | None = None
        try:
            info = await env.info()
            if job.policy is Policy.expert and not info.has_expert:
                raise JobError(f"env {info.name} has no expert")
            model_name = None
            card: dict[str, Any] | None = None
            if job.policy is Policy.model:
                assert job.model is not None
                model = ModelClient(job.model, model_name=job.model_name, api_key=job.api_key, timeout=job.model_timeout,
                                    concurrency=job.model_concurrency or job.concurrency, retries=job.model_retries,
                                    backoff=job.retry_backoff, extras=job.extras)
                model_name = await model.resolve_model_name()
                card = await model.model_card()
            tasks = await self._select_tasks(env)
            extra_body = structured_outputs(info, tools=job.prompt_format is PromptFormat.tools) if job.constrain_actions else None
            ctx = EpisodeContext(job=job, env=env, info=info, model=model, model_name=model_name, stats=self.stats,
                                 extra_body=extra_body)
            provenance = run_provenance(job, info, model_name=model_name, model_card=card, system_prompt=ctx.system(),
                                        tools=ctx.tools, constraint=extra_body, command=self.command)
            store = AsyncStore(await asyncio.to_thread(Store, job.store))
            config = job.model_dump(mode="json")
            config["store"] = safe_url(job.store)
            config["model_name"] = model_name
            run, created = await store.open_run(
                job.run_name, config, job.config_hash(info.name, model_name), env=info.name, model=model_name,
                policy=job.policy.value, prompt_format=job.prompt_format.value, tasks=tasks, samples=job.samples,
                resume=self.resume, provenance=provenance)
            self.run_id = run["id"]
            requeued = await store.requeue(run["id"]) if not created else {}
            before = await store.progress(run["id"])
            self.stats.total = run["total_episodes"]
            self.stats.already_done = sum(n for k, n in before.items() if k not in ("pending", "claimed"))
            await self._collect(store, ctx, run["id"])
            counts = await store.progress(run["id"])
            return RunSummary(run_name=job.run_name, run_id=run["id"], created=created, worker=self.worker,
                              stats=self.stats, counts=counts, stopped=self.stopping, requeued=requeued)
        finally:
            await env.aclose()
            if model is not None:
                await model.aclose()
            if store is not None:
                await asyncio.to_thread(store.store.close)
                store.shutdown()

    async def _wait_for_others(self, store: AsyncStore, run_id: int) -> float | None:
        """Nothing left to claim: None when no other collector holds a claim of the run either (the run is
        done), else seconds to wait before claiming again — until their next lease runs out (a collector
        that died mid-run, e.g. on another machine, leaves its episodes to the survivors) or a poll, whichever
        comes first (claims that end as commits are seen at the next poll)."""
        held, earliest = await store.claims_elsewhere(run_id, set(self._held))
        if not held:
            return None
        poll = min(max(self.job.lease_seconds / 3, 0.05), 2.0)
        if earliest is None:
            return poll
        return min(max((earliest - datetime.now(UTC)).total_seconds(), 0.0) + 0.05, poll)

    async def _collect(self, store: AsyncStore, ctx: EpisodeContext, run_id: int) -> None:
        job = self.job
        batch = min(max(job.concurrency, 16), 256)  # claims per transaction; small runs prefetch a few
        queue: asyncio.Queue[ClaimedEpisode | None] = asyncio.Queue()
        results: asyncio.Queue[EpisodeRecord | None] = asyncio.Queue()
        low_water = asyncio.Event()  # set when the queue of claimed episodes is half empty

        async def claimer() -> None:
            while not self.stopping:
                while queue.qsize() > batch // 2:
                    low_water.clear()
                    await low_water.wait()
                claimed = await store.claim(run_id, self.worker, batch - queue.qsize(), job.lease_seconds)
                if not claimed:
                    pause = await self._wait_for_others(store, run_id)
                    if pause is None:
                        break
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._stop.wait(), pause)
                    continue
                self._held.update(c.id for c in claimed)
                for c in claimed:
                    queue.put_nowait(c)
            for _ in range(job.concurrency):  # not reached when cancelled: the workers are cancelled too
                queue.put_nowait(None)

        async def worker() -> None:
            while True:
                item = await queue.get()
                if queue.qsize() <= batch // 2:
                    low_water.set()
                if item is None or self.stopping:
                    return
                record = await run_episode(ctx, item)
                await results.put(record)

        async def writer() -> None:
            final = False
            while not final:
                first = await results.get()
                if first is None:
                    return
                records = [first]
                while not results.empty() and len(records) < 512:
                    nxt = results.get_nowait()
                    if nxt is None:
                        final = True
                        break
                    records.append(nxt)
                written = set(await store.commit(records, self.worker))
                for rec in records:
                    self._held.discard(rec.episode_id)
                    if rec.episode_id in written:
                        self.stats.record(rec.outcome, rec.success)
                    else:
                        log.warning("episode %d: claim lost before commit; not written", rec.episode_id)

        async def heartbeat() -> None:
            while True:
                await asyncio.sleep(max(job.lease_seconds / 3, 0.05))
                if self._held:
                    try:
                        await store.heartbeat(run_id, self.worker, job.lease_seconds)
                    except Exception as err:  # a missed beat only shortens the lease; the next one may succeed
                        log.warning("lease heartbeat failed: %s", err)

        # Each task reports its end to `settled` (O(1)); the loop below wakes on each report. (An
        # `asyncio.wait` over every worker would re-register N callbacks at each wake-up: O(N) per
        # worker that ends, quadratic at the end of a run with 10,000 workers.)
        wake = asyncio.Event()
        failed: list[BaseException] = []
        running = [job.concurrency]

        def settled(task: asyncio.Task[Any], *, is_worker: bool = False) -> None:
            error = None if task.cancelled() else task.exception()
            if error is not None:
                failed.append(error)
            if is_worker:
                running[0] -= 1
            wake.set()

        def on_worker_done(task: asyncio.Task[Any]) -> None:
            settled(task, is_worker=True)

        writer_task = asyncio.create_task(writer())
        hb_task = asyncio.create_task(heartbeat())
        claim_task = asyncio.create_task(claimer())
        workers = [asyncio.create_task(worker()) for _ in range(job.concurrency)]
        stop_task = asyncio.create_task(self._stop.wait())
        for t in (writer_task, hb_task, claim_task, stop_task):
            t.add_done_callback(settled)
        for w in workers:
            w.add_done_callback(on_worker_done)
        try:
            while True:
                await wake.wait()
                wake.clear()
                if failed:
                    raise failed[0]
                if stop_task.done():
                    break
                if running[0] == 0 and claim_task.done():
                    break
        finally:
            claim_task.cancel()
            for w in workers:
                w.cancel()
            await asyncio.gather(claim_task, *workers, return_exceptions=True)
            if not writer_task.done():
                await results.put(None)
                with contextlib.suppress(Exception):
                    await writer_task
            hb_task.cancel()
            stop_task.cancel()
            await asyncio.gather(hb_task, stop_task, return_exceptions=True)
            if self._held:
                try:
                    await store.release(sorted(self._held), self.worker)
                except Exception as err:  # the claims stay leased and expire; resume also frees dead local workers
                    log.warning("could not release %d claims: %s", len(self._held), err)
                self._held.clear()
