"""The main command in real use: run twice in one folder, stopped by SIGTERM/SIGHUP/SIGKILL, a port already taken,
a model server that is down — each time nothing is left behind and the user sees one `error:` line, no traceback.

Each quickstart runs as `python -m cli.main quickstart` (this worktree's code) in its own session, on a free hub
port, with `--limit 2` tasks per env to stay short.
"""

from __future__ import annotations

import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from services.ports import port_is_free
from tests.support.server import free_port

REPO = Path(__file__).resolve().parents[1]
ROW = re.compile(r"^│ (\w+)\s+│ test\s+│ expert\s+│\s+(\d+) │\s+([\d.]+)% │", re.M)
STALE = ("did not answer", "no healthy replica", "could not remove", "Traceback", "failed a health check")


def quickstart(workdir: Path, hub_port: int, *args: str) -> tuple[subprocess.Popen[bytes], Path]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRAJGYM_")}
    env.update({"PYTHONPATH": str(REPO), "COLUMNS": "160"})
    workdir.parent.mkdir(parents=True, exist_ok=True)
    log = workdir.parent / f"{workdir.name}-{time.monotonic_ns()}.out"
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "cli.main", "quickstart", "--workdir", str(workdir), "--hub-port",
                                 str(hub_port), "--limit", "2", *args], cwd=REPO, env=env, stdout=out,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    return proc, log


def wait_for_dashboard(proc: subprocess.Popen[bytes], log: Path, timeout: float = 240.0) -> str:
    deadline = time.monotonic() + timeout
    while "dashboard: http" not in (text := log.read_text(errors="replace")):
        assert proc.poll() is None, f"quickstart exited early ({proc.returncode}):\n{text[-4000:]}"
        assert time.monotonic() < deadline, f"quickstart did not finish:\n{text[-4000:]}"
        time.sleep(0.3)
    time.sleep(0.5)  # the waiting loop is entered right after the URL is printed
    return text


def table(text: str) -> list[tuple[str, int, float]]:
    return [(env, int(n), float(pct)) for env, n, pct in ROW.findall(text)]


def groups_of(proc: subprocess.Popen[bytes]) -> tuple[set[int], list[psutil.Process]]:
    """The process groups of a quickstart and of every process it started, and those processes."""
    me = psutil.Process(proc.pid)
    family = [me, *me.children(recursive=True)]
    return {os.getpgid(p.pid) for p in family}, family[1:]


def alive_in(pgids: set[int]) -> list[str]:
    out = []
    for p in psutil.process_iter(["pid", "status", "cmdline"]):
        try:
            if p.info["status"] != psutil.STATUS_ZOMBIE and os.getpgid(p.pid) in pgids:
                out.append(" ".join(p.info["cmdline"] or []))
        except (ProcessLookupError, psutil.Error):
            continue
    return out


def registered_replicas(workdir: Path) -> list[tuple[str, str]]:
    with sqlite3.connect(workdir / "trajgym.db") as db:
        return db.execute("SELECT url, status FROM hub_replicas").fetchall()


def test_run_twice_in_the_same_folder(tmp_path: Path) -> None:
    workdir, port = tmp_path / "work", free_port()
    tables = []
    for run in (1, 2):
        proc, log = quickstart(workdir, port, "--no-wait")
        assert proc.wait(timeout=300) == 0, log.read_text()[-4000:]
        text = log.read_text()
        tables.append(table(text))
        assert not [s for s in STALE if s in text], text
        assert registered_replicas(workdir) == [], f"run {run} left replicas registered"
    first, second = tables
    assert second and [(env, n) for env, n, _ in second] == [(env, n) for env, n, _ in first]
    assert [env for env, _, _ in second] == ["webshop", "household", "sql", "qa"]
    assert all(pct == 100.0 for _, _, pct in first + second)
    with sqlite3.connect(workdir / "trajgym.db") as db:  # the earlier run is still there (the dashboard lists both)
        assert db.execute("SELECT COUNT(*) FROM runs").fetchone()[0] == 8


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP], ids=["SIGTERM", "SIGHUP"])
def test_a_stop_signal_leaves_nothing_behind(tmp_path: Path, sig: signal.Signals) -> None:
    workdir, port = tmp_path / "work", free_port()
    proc, log = quickstart(workdir, port)
    try:
        wait_for_dashboard(proc, log)
        pgids, family = groups_of(proc)
        children = psutil.Process(proc.pid).children(recursive=False)
        # the hub and 4 env services, each in its own group (the SQL service's SQL worker processes join its group)
        assert len(children) == 5 and len(pgids) == 6, [" ".join(p.cmdline()) for p in family]

        # a second main command while this one is up: one clear line naming the port, exit 2; the first is untouched
        again, again_log = quickstart(tmp_path / "work", port, "--no-wait")
        assert again.wait(timeout=60) == 2
        lines = [line for line in again_log.read_text().splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith(f"error: port {port} ") and "TRAJGYM_HUB_PORT" in lines[0], lines
        assert all(c.is_running() for c in children)

        started = time.monotonic()
        os.kill(proc.pid, sig)
        assert proc.wait(timeout=10) == 0  # a signal while waiting on the dashboard is the normal end
        while left := alive_in(pgids):
            assert time.monotonic() - started < 10, f"still running 10 s after {sig.name}: {left}"
            time.sleep(0.1)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert "stopping" in log.read_text()
    # dependency order: the env services left the hub while it was still up
    assert registered_replicas(workdir) == []
    assert port_is_free("127.0.0.1", port)  # a new run can bind it again


def test_sigkill_leaves_no_orphans_and_the_next_run_works(tmp_path: Path) -> None:
    workdir, port = tmp_path / "work", free_port()
    proc, log = quickstart(workdir, port)
    try:
        wait_for_dashboard(proc, log)
        _, children = groups_of(proc)
        proc.kill()  # no chance to clean up: the children must go by themselves
        proc.wait(timeout=10)
        deadline = time.monotonic() + 15
        while alive := [c for c in children if c.is_running() and c.status() != psutil.STATUS_ZOMBIE]:
            assert time.monotonic() < deadline, [c.cmdline() for c in alive]
            time.sleep(0.1)
    finally:
        with_group = [c for c in psutil.Process().children(recursive=True) if c.pid != proc.pid]
        for c in with_group:
            c.kill()
    # whatever the killed run left in the registry, the next run in the same folder is clean
    again, again_log = quickstart(workdir, port, "--no-wait")
    assert again.wait(timeout=300) == 0, again_log.read_text()[-4000:]
    text = again_log.read_text()
    assert [env for env, _, _ in table(text)] == ["webshop", "household", "sql", "qa"]
    assert not [s for s in STALE if s in text], text


def test_a_model_server_that_is_down_is_one_error_line_and_stops_everything(tmp_path: Path) -> None:
    workdir, port = tmp_path / "work", free_port()
    proc, log = quickstart(workdir, port, "--no-wait", "--model", f"http://127.0.0.1:{free_port()}/v1")
    assert proc.wait(timeout=300) == 2, log.read_text()
    text = log.read_text()
    errors = [line for line in text.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "model server" in errors[0], text
    assert "Traceback" not in text and "╭─" not in text
    assert registered_replicas(workdir) == []
    assert port_is_free("127.0.0.1", port)
