"""`trajgym serve ENV --workers N`: N env service processes on PORT..PORT+N-1 under one supervisor.

Real processes on real ports: separate session tables, one hub replica per worker with placement spread
across them, SIGTERM stopping them all (they leave the hub), a taken port or unloadable data as one
`error:` line with no worker left, a killed worker restarted. The supervisor's loop is also checked with
test-double processes (a dead worker's backoff, a worker that fails at start).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import psutil
import pytest
import typer
from typer.testing import CliRunner

from clients.hub_client import RegistryClient
from services.ports import free_port, free_port_range, port_is_free
from services.workers import Supervisor, WorkerFailed, WorkersError, WorkerSpec, worker_public_url
from tests.support.placed import placed_expert_episodes
from wire.errors import EnvClientError

REPO = Path(__file__).resolve().parents[1]
COUNTER = "tests.support.counter_env:CounterEnv"
TOKEN = "workers-token"


class Proc:
    """A `trajgym` process with its output in a log file."""

    def __init__(self, args: tuple[str, ...], log: Path, env: dict[str, str] | None) -> None:
        full_env = {k: v for k, v in os.environ.items() if not k.startswith("TRAJGYM_")}
        full_env.update({"PYTHONPATH": str(REPO), **(env or {})})
        self.log = log
        self.seen: set[psutil.Process] = set()  # every worker seen, killed at teardown if still there
        with open(log, "wb") as out:  # the child keeps its own handle
            self.popen = subprocess.Popen([sys.executable, "-m", "cli.main", *args], cwd=REPO, env=full_env,
                                          stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def workers(self) -> list[psutil.Process]:
        with contextlib.suppress(psutil.NoSuchProcess):
            children = psutil.Process(self.popen.pid).children()
            self.seen.update(children)
            return children
        return []

    def worker_pids(self, port: int) -> list[int]:
        """The live workers asked to listen on `port` (a killed one is a zombie until the supervisor reaps it)."""
        pids = []
        for worker in self.workers():
            with contextlib.suppress(psutil.Error):
                if f"--port={port}" in worker.cmdline():
                    pids.append(worker.pid)
        return pids


@pytest.fixture
def spawn(tmp_path: Path) -> Iterator[Callable[..., Proc]]:
    procs: list[Proc] = []

    def start(*args: str, env: dict[str, str] | None = None) -> Proc:
        proc = Proc(args, tmp_path / f"proc{len(procs)}.log", env)
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        proc.workers()
        if proc.popen.poll() is None:
            proc.popen.kill()
        proc.popen.wait(timeout=10)
        for child in proc.seen:  # the parent-death signal stops them too; do not rely on it here
            with contextlib.suppress(psutil.NoSuchProcess):
                child.kill()
        sys.stderr.write(f"--- {proc.log.name}\n{proc.output()[-3000:]}\n")


def wait_until(check: Callable[[], bool], timeout: float = 60.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def ready(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2.0).status_code == 200
    except httpx.HTTPError:
        return False


def serving_processes(ports: list[int]) -> list[psutil.Process]:
    """Processes whose command line asks for one of `ports` (a worker left behind)."""
    wanted = {f"--port={p}" for p in ports} | {str(p) for p in ports}
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        cmdline = proc.info["cmdline"] or []
        if "cli.main" in cmdline and "serve" in cmdline and wanted & set(cmdline):
            found.append(proc)
    return found


def all_gone(workers: list[psutil.Process]) -> bool:
    for worker in workers:
        with contextlib.suppress(psutil.NoSuchProcess):
            if worker.is_running() and worker.status() != psutil.STATUS_ZOMBIE:
                return False
    return True


def one_error_line(proc: Proc) -> str:
    assert proc.popen.wait(timeout=120) == 2, proc.output()
    lines = [line for line in proc.output().splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    return lines[0]


# ----- real processes ---------------------------------------------------------------------------------


def test_two_workers_have_their_own_ports_and_session_tables(spawn: Callable[..., Proc]) -> None:
    port = free_port_range(2)
    proc = spawn("serve", COUNTER, "--workers", "2", "--port", str(port))
    wait_until(lambda: ready(port) and ready(port + 1), what="both workers")
    workers = proc.workers()
    assert len(workers) == 2 and all(w.status() != psutil.STATUS_ZOMBIE for w in workers)

    created = httpx.post(f"http://127.0.0.1:{port}/v1/sessions", json={"task_id": "counter-3"}, timeout=10).json()
    sid = created["session_id"]
    assert httpx.get(f"http://127.0.0.1:{port}/v1/sessions/{sid}", timeout=10).status_code == 200
    assert httpx.get(f"http://127.0.0.1:{port + 1}/v1/sessions/{sid}", timeout=10).status_code == 404
    assert httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=10).json()["sessions"] == 1
    assert httpx.get(f"http://127.0.0.1:{port + 1}/healthz", timeout=10).json()["sessions"] == 0

    proc.popen.send_signal(signal.SIGINT)  # like Ctrl-C: forwarded; the supervisor ends as a single serve does
    assert proc.popen.wait(timeout=60) in (130, -signal.SIGINT)
    out = proc.output()
    assert f"worker 0: http://127.0.0.1:{port}" in out and f"worker 1: http://127.0.0.1:{port + 1}" in out
    wait_until(lambda: all_gone(workers), 10, "the workers to exit")
    assert port_is_free("127.0.0.1", port) and port_is_free("127.0.0.1", port + 1)


async def test_workers_register_as_replicas_share_placement_and_leave_on_sigterm(spawn: Callable[..., Proc],
                                                                                tmp_path: Path) -> None:
    hub_port, port = free_port(), free_port_range(2)
    hub_url = f"http://127.0.0.1:{hub_port}"
    spawn("hub", "--port", str(hub_port), "--store", f"sqlite:///{tmp_path / 'hub.db'}", "--token", TOKEN,
          "--health-interval", "0.3", "--failures-before-down", "1")
    # --public-url U: worker i is registered as U with U's port + i
    proc = spawn("serve", COUNTER, "--workers", "2", "--port", str(port), "--register", hub_url, "--hub-token", TOKEN,
                 "--public-url", f"http://localhost:{port}")
    urls = [f"http://localhost:{port}", f"http://localhost:{port + 1}"]
    async with RegistryClient(hub_url) as registry:
        async def replicas(healthy: bool = True) -> list[str]:
            with contextlib.suppress(EnvClientError):  # the hub may not be up yet
                listed = await registry.healthy_replicas("counter") if healthy else (await registry.get_env("counter")).replicas
                return sorted(r.url for r in listed)
            return []

        deadline = time.monotonic() + 60
        while await replicas() != urls:
            assert time.monotonic() < deadline, "both workers to register"
            await asyncio.sleep(0.1)
        # the hub token reaches the workers in their environment, not on a command line anyone can read
        assert all(TOKEN not in " ".join(w.cmdline()) for w in proc.workers())

        results = await placed_expert_episodes(registry, "counter", 8, hold=0.3)
        assert all(ok for _, ok in results)
        assert sorted(url for url, _ in results) == sorted(urls * 4)  # least-loaded: spread evenly over both workers

        proc.popen.send_signal(signal.SIGTERM)
        assert proc.popen.wait(timeout=60) == -signal.SIGTERM  # the exit status says which signal stopped it
        assert await replicas(healthy=False) == []  # both left the hub (the env stays registered)
    assert port_is_free("127.0.0.1", port) and port_is_free("127.0.0.1", port + 1)


def test_a_taken_port_in_the_range_is_one_error_line_and_starts_nothing(spawn: Callable[..., Proc]) -> None:
    port = free_port_range(3)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", port + 2))
        taken.listen()
        proc = spawn("serve", COUNTER, "--workers", "3", "--port", str(port))
        line = one_error_line(proc)
    assert f"port {port + 2} on 127.0.0.1 is already in use" in line
    assert serving_processes([port, port + 1, port + 2]) == []


def test_data_the_env_cannot_load_is_reported_once(spawn: Callable[..., Proc], tmp_path: Path) -> None:
    port = free_port_range(4)
    line = one_error_line(spawn("serve", COUNTER, "--workers", "4", "--port", str(port), "--data-dir", str(tmp_path / "nope")))
    assert "does not exist" in line  # checked before any worker starts
    line = one_error_line(spawn("serve", COUNTER, "--workers", "4", "--port", str(port), "--mode", "grading=lenient"))
    assert "no mode 'grading'" in line
    (tmp_path / "empty").mkdir()
    # a folder the env itself refuses: worker 0 (started alone) says so once, the others never start
    line = one_error_line(spawn("serve", "tests.support.counter_env:DataCounterEnv", "--workers", "4", "--port", str(port),
                                "--data-dir", str(tmp_path / "empty")))
    assert "counter.txt: no such file" in line
    assert serving_processes([port + i for i in range(4)]) == []


def test_a_killed_worker_is_restarted_on_its_port(spawn: Callable[..., Proc]) -> None:
    port = free_port_range(2)
    proc = spawn("serve", COUNTER, "--workers", "2", "--port", str(port))
    wait_until(lambda: ready(port) and ready(port + 1), what="both workers")
    # the supervisor, too, must have seen both ready (it announces them): killed before that, a worker
    # failed the start (exit 2), which is another test's case
    wait_until(lambda: f"worker 1: http://127.0.0.1:{port + 1}" in proc.output(), what="the supervisor's announcement")
    [victim] = proc.worker_pids(port + 1)
    os.kill(victim, signal.SIGKILL)
    wait_until(lambda: proc.worker_pids(port + 1) not in ([], [victim]), what="worker 1 to be started again")
    wait_until(lambda: ready(port + 1), what="worker 1 to serve again")
    assert ready(port) and proc.popen.poll() is None
    assert "worker 1 (port %d) died (killed by SIGKILL)" % (port + 1) in proc.output()
    workers = proc.workers()
    proc.popen.send_signal(signal.SIGHUP)
    assert proc.popen.wait(timeout=60) == -signal.SIGHUP
    wait_until(lambda: all_gone(workers), 10, "the workers to exit")



def test_workers_die_with_a_killed_supervisor(spawn: Callable[..., Proc]) -> None:
    port = free_port_range(2)
    proc = spawn("serve", COUNTER, "--workers", "2", "--port", str(port))
    wait_until(lambda: ready(port) and ready(port + 1), what="both workers")
    workers = proc.workers()
    proc.popen.kill()  # no chance to forward anything: the kernel's parent-death signal stops them
    proc.popen.wait(timeout=10)
    wait_until(lambda: all_gone(workers), 30, "the workers to exit")
    assert port_is_free("127.0.0.1", port) and port_is_free("127.0.0.1", port + 1)


# ----- the supervisor with test-double processes ---------------------------------------------------------


class FakeProc:
    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.code: int | None = None
        self.signals: list[int] = []

    def poll(self) -> int | None:
        return self.code

    def send_signal(self, sig: int) -> None:
        self.signals.append(sig)
        self.code = -sig


class Script:
    """A fake clock whose `sleep` advances it and runs the test's scenario."""

    def __init__(self) -> None:
        self.now = 0.0
        self.step: Callable[[], None] = lambda: None

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds
        self.step()


def specs(n: int) -> list[WorkerSpec]:
    return [WorkerSpec(i, 9000 + i, f"http://127.0.0.1:{9000 + i}", ("serve",)) for i in range(n)]


def test_a_dead_worker_is_restarted_with_a_doubling_backoff_while_the_others_serve() -> None:
    script = Script()
    spawned: list[tuple[int, float, FakeProc]] = []

    def spawn(spec: WorkerSpec) -> FakeProc:
        proc = FakeProc(len(spawned) + 100)
        spawned.append((spec.index, script.now, proc))
        return proc

    deaths: list[float] = []
    sup = Supervisor(specs(3), spawn=spawn, ready=lambda spec: True, kill=lambda proc: None, backoff=1.0, max_backoff=30.0,
                     stable_after=60.0, poll=0.1, clock=script.clock, sleep=script.sleep)

    def scenario() -> None:
        worker1 = [p for i, _, p in spawned if i == 1]
        if len(worker1) <= 3 and worker1[-1].code is None and script.now > 5 * len(worker1):
            worker1[-1].code = -signal.SIGKILL  # it dies three times, soon after each start
            deaths.append(script.now)
        elif len(worker1) == 4 and script.now > deaths[-1] + 10:
            sup.stop(signal.SIGTERM)

    script.step = scenario
    assert sup.run() == signal.SIGTERM
    starts = [t for i, t, _ in spawned if i == 1]
    assert [i for i, _, _ in spawned].count(0) == 1 and [i for i, _, _ in spawned].count(2) == 1  # the others untouched
    assert len(starts) == 4 and sup.restarts == 3
    waits = [start - death for start, death in zip(starts[1:], deaths)]
    assert [round(w) for w in waits] == [1, 2, 4]  # each quick death doubles the wait
    assert all(p.signals == [signal.SIGTERM] for i, _, p in spawned if p.code == -signal.SIGTERM)
    assert sum(1 for _, _, p in spawned if p.signals) == 3  # the live ones got the stop signal, the dead ones not


def test_the_backoff_starts_over_after_a_worker_ran_long_enough() -> None:
    script = Script()
    spawned: list[FakeProc] = []
    sup = Supervisor(specs(1), spawn=lambda spec: spawned.append(FakeProc(len(spawned))) or spawned[-1],
                     ready=lambda spec: True, kill=lambda proc: None, backoff=1.0, stable_after=60.0, poll=0.5,
                     clock=script.clock, sleep=script.sleep)
    died_at: list[float] = []

    def scenario() -> None:
        if len(spawned) == 1 and script.now > 2 and spawned[0].code is None:
            spawned[0].code = 1
            died_at.append(script.now)
        elif len(spawned) == 2 and script.now > 100 and spawned[1].code is None:  # ran for over stable_after
            spawned[1].code = 1
            died_at.append(script.now)
        elif len(spawned) == 3:
            sup.stop(signal.SIGINT)

    script.step = scenario
    assert sup.run() == signal.SIGINT
    assert sup.slots[0].backoff == 2.0  # it was reset to 1 s before the second death, then doubled once


@pytest.mark.parametrize("code,reported", [(2, True), (-signal.SIGKILL, False)])
def test_a_worker_that_fails_at_start_stops_the_others(code: int, reported: bool) -> None:
    script = Script()
    spawned: list[FakeProc] = []
    sup = Supervisor(specs(3), spawn=lambda spec: spawned.append(FakeProc(spec.index)) or spawned[-1],
                     ready=lambda spec: spec.index != 2, kill=lambda proc: None, clock=script.clock, sleep=script.sleep)

    def scenario() -> None:
        if len(spawned) == 3 and script.now > 3:
            spawned[2].code = code

    script.step = scenario
    with pytest.raises(WorkerFailed) as failed:
        sup.run()
    assert failed.value.reported is reported and "worker 2 (port 9002) exited before it was ready" in str(failed.value)
    assert [p.signals for p in spawned] == [[signal.SIGTERM], [signal.SIGTERM], []]


def test_worker_0_starts_alone_and_a_failure_there_starts_no_other() -> None:
    script = Script()
    spawned: list[int] = []

    def spawn(spec: WorkerSpec) -> FakeProc:
        spawned.append(spec.index)
        proc = FakeProc(spec.index)
        proc.code = 2 if spec.index == 0 else None
        return proc

    with pytest.raises(WorkerFailed):
        Supervisor(specs(4), spawn=spawn, ready=lambda spec: False, kill=lambda proc: None, clock=script.clock,
                   sleep=script.sleep).run()
    assert spawned == [0]


def test_a_second_stop_signal_kills_the_workers() -> None:
    script = Script()
    killed: list[int] = []

    class Stubborn(FakeProc):
        def send_signal(self, sig: int) -> None:
            self.signals.append(sig)  # it does not exit by itself

    procs: list[Stubborn] = []

    def kill(proc: FakeProc) -> None:
        killed.append(proc.pid)
        proc.code = -signal.SIGKILL

    sup = Supervisor(specs(2), spawn=lambda spec: procs.append(Stubborn(spec.index)) or procs[-1], ready=lambda spec: True,
                     kill=kill, clock=script.clock, sleep=script.sleep)

    def scenario() -> None:
        if script.now > 1 and sup.stop_signal is None:
            sup.stop(signal.SIGTERM)
        elif script.now > 5 and not sup.forced:
            sup.stop(signal.SIGTERM)

    script.step = scenario
    assert sup.run() == signal.SIGTERM
    assert [p.signals for p in procs] == [[signal.SIGTERM], [signal.SIGTERM]] and sorted(set(killed)) == [0, 1]


# ----- the command line ---------------------------------------------------------------------------------


def test_public_url_of_each_worker() -> None:
    assert worker_public_url("http://envs.example:9000/webshop", 0) == "http://envs.example:9000/webshop"
    assert worker_public_url("http://envs.example:9000/webshop", 3) == "http://envs.example:9003/webshop"
    assert worker_public_url("https://envs.example", 1) == "https://envs.example:444"
    assert worker_public_url("http://[::1]:8000", 2) == "http://[::1]:8002"
    with pytest.raises(WorkersError, match="above 65535"):
        worker_public_url("http://h:65535", 1)


def test_workers_share_every_option_but_their_port_public_url_and_token(monkeypatch: pytest.MonkeyPatch) -> None:
    """The workers' command line is rebuilt from the parsed options: parsed again, it gives the same values."""
    from cli import serve as serve_cli

    seen: dict[str, object] = {}

    def fake_serve_workers(env: str, workers: int, command: Callable[[int, str | None], list[str]], **kw: object) -> None:
        seen.update(env=env, workers=workers, argv=command(7001, "http://pub:7001"), **kw)

    monkeypatch.setattr("services.workers.serve_workers", fake_serve_workers)
    app = typer.Typer()
    serve_cli.register(app)
    given = ["data-counter", "--workers", "3", "--port", "7000", "--mode", "a=b", "--mode", "c=d", "--no-expert",
             "--max-sessions", "77", "--heartbeat", "0.5", "--hub-token", "secret", "--register", "http://hub:1",
             "--public-url", "http://pub:7000", "--data-dir", "/tmp/x y"]
    result = CliRunner().invoke(app, given)
    assert result.exit_code == 0, result.output
    argv = seen["argv"]
    assert isinstance(argv, list) and argv[:4] == [sys.executable, "-m", "cli.main", "serve"]
    assert "secret" not in " ".join(argv) and "--workers=3" not in argv
    assert seen["child_env"]["TRAJGYM_HUB_TOKEN"] == "secret"  # type: ignore[index]

    reparsed: dict[str, object] = {}
    monkeypatch.setattr("services.runner.serve_env", lambda env, **kw: reparsed.update(env=env, **kw))
    result = CliRunner().invoke(app, argv[4:])
    assert result.exit_code == 0, result.output
    assert reparsed["env"] == "data-counter" and reparsed["port"] == 7001 and reparsed["public_url"] == "http://pub:7001"
    assert reparsed["modes"] == {"a": "b", "c": "d"} and reparsed["data_dir"] == Path("/tmp/x y")
    assert reparsed["register"] == "http://hub:1" and reparsed["heartbeat"] == 0.5 and reparsed["hub_token"] is None
    settings = reparsed["settings"]
    assert settings.max_sessions == 77 and settings.expert_enabled is False  # type: ignore[attr-defined]


def test_one_worker_is_the_plain_serve_in_this_process(monkeypatch: pytest.MonkeyPatch) -> None:
    from cli import serve as serve_cli

    calls: list[dict[str, object]] = []
    monkeypatch.setattr("services.runner.serve_env", lambda env, **kw: calls.append({"env": env, **kw}))
    monkeypatch.setattr("services.workers.serve_workers", lambda *a, **kw: pytest.fail("no supervisor for one worker"))
    app = typer.Typer()
    serve_cli.register(app)
    assert CliRunner().invoke(app, [COUNTER, "--port", "7100"]).exit_code == 0
    assert CliRunner().invoke(app, [COUNTER, "--port", "7100", "--workers", "1"]).exit_code == 0
    assert len(calls) == 2 and calls[0] == calls[1] and calls[0]["port"] == 7100


def test_workers_out_of_range_are_one_error_line() -> None:
    r = subprocess.run([sys.executable, "-m", "cli.main", "serve", COUNTER, "--workers", "4", "--port", "65534"], cwd=REPO,
                       env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and r.stderr.strip().splitlines() == [r.stderr.strip()]
    assert r.stderr.startswith("error: --workers 4 needs ports 65534..65537")
    r = subprocess.run([sys.executable, "-m", "cli.main", "serve", COUNTER, "--workers", "65"], cwd=REPO,
                       env={**os.environ, "PYTHONPATH": str(REPO), "COLUMNS": "200"}, capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "'--workers'" in r.stderr and "less than or equal to 64" in r.stderr  # typer's usage error
