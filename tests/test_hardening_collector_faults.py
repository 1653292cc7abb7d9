"""Fault injection under a running collector, beyond tests/test_collector_faults.py (which covers
model 500 / timeout / dropped response, an env service killed then resumed, SIGKILL and Ctrl-C).

Here: model 429, a slow answer, connection resets (infrastructure: retried); malformed JSON and a
200 with the wrong shape (an unusable reply: that episode is a policy error with its reason);
an env service killed and restarted on the same port mid-run (the run finishes by itself); one of
two hub replicas killed mid-run (episodes retried on the other); the store's disk filling up or
turning read-only mid-run (root + tmpfs; clear error, nothing lost, resume completes); and a
PostgreSQL restart under a running collector (`@pytest.mark.postgres`). In every case no
episode is ever stored with reward 0 for an infrastructure fault.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from collector.config import JobConfig
from collector.collect import Collector
from store import Store
from services.app import create_app
from services.hub.app import create_hub_app
from tests.support.counter_env import CounterData, CounterEnv
from tests.support.openai_stub import StubControl, create_stub
from tests.support.server import free_port, running_server, start_counter_process

ROOT = Path(__file__).resolve().parents[1]
TARGETS = {t.task_id: int(t.meta["target"]) for t in CounterData().tasks.values()}
ALL_TASKS = [f"counter-{i}" for i in range(30)]


# ----- a model server with more faults: wraps the scripted stub --------------------------------
class Faults:
    """Per-request faults for the wrapper: `429`, `badjson` (200, cut JSON), `badshape` (200, JSON
    without choices), `slow` (answers after `slow_s`)."""

    def __init__(self) -> None:
        self.queue: deque[str] = deque()
        self.always: str | None = None
        self.slow_s = 1.0
        self.count = 0

    def next(self) -> str | None:
        fault = self.queue.popleft() if self.queue else self.always
        self.count += fault is not None
        return fault


def faulty_model(faults: Faults) -> tuple[Any, StubControl]:
    stub, control = create_stub()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"].endswith("/chat/completions"):
            fault = faults.next()
            canned = {"429": (429, b'{"error": {"message": "rate limited"}}', [(b"retry-after", b"0")]),
                      "badjson": (200, b'{"id": "chatcmpl-1", "choices": [{"message": {"content": "Act', []),
                      "badshape": (200, b'{"id": "chatcmpl-1", "object": "chat.completion"}', [])}
            if fault in canned:
                status, body, extra = canned[fault]
                await send({"type": "http.response.start", "status": status,
                            "headers": [(b"content-type", b"application/json"), *extra]})
                await send({"type": "http.response.body", "body": body})
                return
            if fault == "slow":
                await asyncio.sleep(faults.slow_s)
        await stub(scope, receive, send)

    return app, control


@contextlib.asynccontextmanager
async def resetting_server() -> AsyncIterator[str]:
    """A TCP server that resets (RST) every connection as soon as a request arrives."""
    resets = 0

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal resets
        with contextlib.suppress(Exception):
            await reader.read(1024)
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        resets += 1
        writer.transport.abort()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.close()
        await server.wait_closed()


@pytest.fixture(scope="module")
def env_url() -> Iterator[str]:
    with running_server(create_app(CounterEnv)) as url:
        yield url


def _job(store: str, env: str, model: str, **kw: object) -> JobConfig:
    base: dict[str, object] = {"run_name": "hardening", "env": env, "model": model, "model_name": "solver", "store": store,
                               "split": "all", "samples": 1, "concurrency": 4, "retry_backoff": 0.01,
                               "model_timeout": 0.5, "model_retries": 1, "max_attempts": 2}
    base.update(kw)
    return JobConfig.model_validate(base)


def _assert_no_fake_zero(store: Store, run_id: int) -> dict[str, int]:
    """Infra failures carry no reward, no turns; scored episodes are complete successes (the solver)."""
    outcomes: dict[str, int] = {}
    for ep in store.episodes(run_id):
        outcomes[ep["outcome"]] = outcomes.get(ep["outcome"], 0) + 1
        if ep["outcome"] == "infra_error":
            assert ep["reward"] is None and ep["success"] is None and store.turns(ep["id"]) == [], ep
        elif ep["status"] == "done":
            assert (ep["outcome"], ep["reward"]) == ("success", 1.0), ep
    return outcomes


def _assert_complete(store: Store, run_id: int, tasks: list[str]) -> None:
    episodes = store.episodes(run_id)
    assert sorted(e["task_id"] for e in episodes) == sorted(tasks)
    for ep in episodes:
        steps = math.ceil(TARGETS[ep["task_id"]] / 9) + 1
        assert (ep["status"], ep["outcome"], ep["reward"], ep["turns"]) == ("done", "success", 1.0, steps), ep
        assert [t["idx"] for t in store.turns(ep["id"])] == list(range(2 + 2 * steps))


# ----- model faults ------------------------------------------------------------------------------
async def test_transient_429_and_slow_are_retried(tmp_path: Path, env_url: str) -> None:
    faults = Faults()
    faults.queue.extend(["429", "slow", "429"])
    app, _ = faulty_model(faults)
    with running_server(app) as model:
        job = _job(str(tmp_path / "s.db"), env_url, model, limit=4, model_retries=5, concurrency=2)
        summary = await Collector(job).run()
    assert faults.count == 3 and summary.counts == {"success": 4}, summary.counts
    _assert_complete(Store(job.store), summary.run_id, ALL_TASKS[:4])


@pytest.mark.parametrize(("fault", "reason"), [("badjson", "non-JSON body"), ("badshape", "choices is null")])
async def test_unusable_model_reply_ends_that_episode_as_policy_error(tmp_path: Path, env_url: str, fault: str,
                                                                      reason: str) -> None:
    """Bad JSON or a reply without choices is not infrastructure: the episode ends with its reason, the run goes on."""
    faults = Faults()
    faults.queue.append(fault)
    app, _ = faulty_model(faults)
    with running_server(app) as model:
        job = _job(str(tmp_path / "s.db"), env_url, model, limit=3, concurrency=1)
        summary = await Collector(job).run()
    assert faults.count == 1 and summary.counts == {"policy_error": 1, "success": 2}, summary.counts
    (bad,) = [e for e in Store(job.store).episodes(summary.run_id) if e["outcome"] == "policy_error"]
    assert bad["error"].startswith("model reply unusable") and reason in bad["error"], bad["error"]
    assert bad["reward"] == 0.0 and bad["success"] is False and bad["attempt"] == 1


@pytest.mark.parametrize("fault", ["429"])
async def test_model_always_faulty_gives_infra_errors_not_reward_zero(tmp_path: Path, env_url: str, fault: str) -> None:
    faults = Faults()
    faults.always = fault
    app, _ = faulty_model(faults)
    with running_server(app) as model:
        job = _job(str(tmp_path / "s.db"), env_url, model, limit=3, concurrency=3)
        summary = await Collector(job).run()
    assert summary.counts == {"infra_error": 3}, summary.counts
    assert faults.count == 3 * job.max_attempts * (job.model_retries + 1)
    store = Store(job.store)
    assert _assert_no_fake_zero(store, summary.run_id) == {"infra_error": 3}
    assert all(e["error"].startswith("model:") for e in store.episodes(summary.run_id))


async def test_model_connection_reset_gives_infra_errors(tmp_path: Path, env_url: str) -> None:
    async with resetting_server() as model:
        job = _job(str(tmp_path / "s.db"), env_url, model, limit=3, concurrency=3)
        summary = await Collector(job).run()
    assert summary.counts == {"infra_error": 3}, summary.counts
    assert _assert_no_fake_zero(Store(job.store), summary.run_id) == {"infra_error": 3}


# ----- env service faults ----------------------------------------------------------------------


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.kill()
    proc.wait()


async def _wait_done(collector: Collector, n: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while collector.stats.done < n and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    assert collector.stats.done >= n, "the collector made no progress"


async def test_env_service_killed_and_restarted_mid_run_finishes_in_one_run(tmp_path: Path) -> None:
    app, control = create_stub()
    control.delay = 0.02
    port = free_port()
    procs = [start_counter_process(port)]
    try:
        with running_server(app) as model:
            # 5 attempts with backoff 0.3, 0.6, 1.2, 2.4 s: longer than the restart takes
            job = _job(str(tmp_path / "s.db"), f"http://127.0.0.1:{port}", model, concurrency=3, max_attempts=5,
                       retry_backoff=0.3, env_timeout=2.0)
            collector = Collector(job)
            run = asyncio.create_task(collector.run())
            await _wait_done(collector, 4)
            procs[0].send_signal(signal.SIGKILL)  # 3 episodes in flight lose their sessions
            await asyncio.to_thread(procs[0].wait)
            procs.append(await asyncio.to_thread(start_counter_process, port))
            summary = await run
        assert summary.counts == {"success": 30}, summary.counts
        assert summary.stats.infra_retries >= 1  # the in-flight episodes were retried on the new process
        store = Store(job.store)
        _assert_complete(store, summary.run_id, ALL_TASKS)
        assert any(e["attempt"] > 1 for e in store.episodes(summary.run_id))
    finally:
        for proc in procs:
            _stop(proc)


async def test_one_of_two_hub_replicas_killed_mid_run(tmp_path: Path) -> None:
    app, control = create_stub()
    control.delay = 0.02
    token = "hardening"
    ports = [free_port(), free_port()]
    procs = [start_counter_process(p) for p in ports]
    hub = create_hub_app(f"sqlite:///{tmp_path / 'hub.db'}", token, health_checks=False)
    try:
        with running_server(app) as model, running_server(hub) as hub_url:
            r = httpx.post(hub_url + "/v1/envs", json={"urls": [f"http://127.0.0.1:{p}" for p in ports], "name": "counter"},
                           headers={"Authorization": f"Bearer {token}"}, timeout=10)
            assert r.status_code == 201, r.text
            job = _job(str(tmp_path / "s.db"), "counter", model, hub=hub_url, concurrency=4, max_attempts=3,
                       retry_backoff=0.05, env_timeout=2.0)
            collector = Collector(job)
            run = asyncio.create_task(collector.run())
            await _wait_done(collector, 4)
            procs[0].send_signal(signal.SIGKILL)
            summary = await run
        assert summary.counts == {"success": 30}, summary.counts
        _assert_complete(Store(job.store), summary.run_id, ALL_TASKS)
    finally:
        for proc in procs:
            _stop(proc)


# ----- the store fills up or turns read-only -----------------------------------------------------
@contextlib.contextmanager
def tiny_tmpfs(tmp_path: Path, size: str) -> Iterator[Path]:
    """A small tmpfs mounted under tmp_path (root only; skipped otherwise)."""
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("needs root to mount a small tmpfs for the disk-full / read-only store tests")
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mnt)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def _remount(mnt: Path, options: str) -> None:
    subprocess.run(["mount", "-o", f"remount,{options}", str(mnt)], check=True)


def _fill(mnt: Path) -> Path:
    """Fill the filesystem to the last byte with a ballast file."""
    ballast = mnt / "ballast"
    with ballast.open("wb", buffering=0) as fh:
        for chunk in (65536, 512, 1):
            with contextlib.suppress(OSError):
                while True:
                    fh.write(b"\0" * chunk)
    return ballast


async def test_store_disk_full_mid_run(tmp_path: Path, env_url: str) -> None:
    app, control = create_stub()
    control.delay = 0.02
    with tiny_tmpfs(tmp_path, "16m") as mnt, running_server(app) as model:
        db = str(mnt / "store.db")
        job = _job(db, env_url, model, concurrency=3, lease_seconds=2.0)
        collector = Collector(job)
        run = asyncio.create_task(collector.run())
        await _wait_done(collector, 5)
        ballast = await asyncio.to_thread(_fill, mnt)
        with pytest.raises(Exception) as failure:
            await asyncio.wait_for(run, 60)
        message = f"{type(failure.value).__name__}: {failure.value}"
        assert "database or disk is full" in message, message[:500]
        ballast.unlink()  # space comes back: nothing was lost, resume completes each task exactly once
        store = Store(db)
        run_id = store.get_run("hardening")["id"]
        assert store.progress(run_id).get("success", 0) >= 5
        assert _assert_no_fake_zero(store, run_id).get("infra_error", 0) == 0
        # The failed run could not release its claims (the store refused the write): they stay leased
        # to this (live) process until the lease expires; a new collector process would free them at once.
        await asyncio.sleep(job.lease_seconds + 0.5)
        summary = await Collector(job.model_copy(update={"lease_seconds": 120.0}), resume=True).run()
        assert summary.counts == {"success": 30}, summary.counts
        _assert_complete(store, run_id, ALL_TASKS)
        store.close()


async def test_store_read_only_gives_a_clear_error_and_keeps_episodes(tmp_path: Path, env_url: str) -> None:
    """A store on a filesystem remounted read-only between runs (Linux refuses `remount,ro` while the
    collector holds the file open for writing, so mid-run read-only is not reachable this way)."""
    app, control = create_stub()
    with tiny_tmpfs(tmp_path, "16m") as mnt, running_server(app) as model:
        db = str(mnt / "store.db")
        job = _job(db, env_url, model, concurrency=3)
        first = await Collector(job.model_copy(update={"limit": 5})).run()
        assert first.counts == {"success": 5}
        _remount(mnt, "ro")
        try:
            with pytest.raises(Exception) as failure:
                await asyncio.wait_for(Collector(job, resume=True).run(), 60)
        finally:
            _remount(mnt, "rw")
        message = f"{type(failure.value).__name__}: {failure.value}"
        # SQLite cannot create its WAL files there: "unable to open database file" (it does not name the
        # read-only filesystem; reported to the collector engineer), or "readonly database" on a write.
        assert re.search("read-?only|unable to open database file", message, re.IGNORECASE), message[:500]
        store = Store(db)
        episodes = store.episodes(first.run_id)
        assert len(episodes) == 5 and all(e["outcome"] == "success" for e in episodes)
        store.close()


# ----- PostgreSQL restarted under a running collector --------------------------------------------
PG = "postgresql://postgres@127.0.0.1:5432/test"


def _pg_restart() -> None:
    cluster = sorted(os.listdir("/etc/postgresql"))[-1]
    cmd = ["pg_ctlcluster", "--skip-systemctl-redirect", cluster, "main", "restart"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    if done.returncode != 0:  # make sure the shared server ends up running whatever happened
        subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", cluster, "main", "start"], timeout=120)
        raise AssertionError(f"pg restart failed: {done.stderr}")


def _pg_wait(psycopg: Any) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            psycopg.connect(PG, connect_timeout=2).close()
            return
        except psycopg.OperationalError:
            time.sleep(0.2)
    raise AssertionError("PostgreSQL did not come back within 60 s")


@pytest.mark.postgres
async def test_postgres_restart_under_a_running_collector(env_url: str) -> None:
    psycopg = pytest.importorskip("psycopg")
    if not Path("/etc/postgresql").is_dir() or shutil.which("pg_ctlcluster") is None:
        pytest.skip("no local PostgreSQL cluster to restart")
    try:
        admin = psycopg.connect(PG, connect_timeout=3, autocommit=True)
    except psycopg.OperationalError as err:
        pytest.skip(f"PostgreSQL at 127.0.0.1:5432 is unreachable: {err}")
    schema = f"tg_hardening_{uuid.uuid4().hex[:12]}"
    admin.execute(f'CREATE SCHEMA "{schema}"')
    admin.close()
    url = f"postgresql+psycopg://postgres@127.0.0.1:5432/test?options=-csearch_path%3D{schema}"
    app, control = create_stub()
    control.delay = 0.03
    try:
        with running_server(app) as model:
            job = _job(url, env_url, model, concurrency=3, samples=2, lease_seconds=2.0, sampling={"temperature": 0.7})
            collector = Collector(job)
            run = asyncio.create_task(collector.run())
            await _wait_done(collector, 5)
            await asyncio.to_thread(_pg_restart)
            # The store retries its transactions until the server is back: the run finishes by itself.
            first = await asyncio.wait_for(run, 180)
            outcome = f"finished: {first.counts}"
            await asyncio.to_thread(_pg_wait, psycopg)
            summary = await Collector(job.model_copy(update={"lease_seconds": 120.0}), resume=True).run()
            assert summary.stats.done == 0, "the first run left work for the resume"
            print(f"postgres restart: first run {outcome}; resume {summary.counts}")
            store = Store(url)
            episodes = store.episodes(summary.run_id)
            assert sorted((e["task_id"], e["sample"]) for e in episodes) == sorted((t, s) for t in ALL_TASKS for s in range(2)), outcome
            for ep in episodes:
                assert (ep["status"], ep["outcome"], ep["reward"]) == ("done", "success", 1.0), (outcome, ep)
                steps = math.ceil(TARGETS[ep["task_id"]] / 9) + 1
                assert [t["idx"] for t in store.turns(ep["id"])] == list(range(2 + 2 * steps)), outcome
            store.close()
    finally:
        await asyncio.to_thread(_pg_wait, psycopg)
        with psycopg.connect(PG, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
