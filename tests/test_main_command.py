"""The README's main command, exactly as written there, in a clean virtual environment.

It must set up its venv, start the hub and the four env services, collect on every
env's built-in test split, print the AgentEval table, write the export, serve the
dashboard, and stop everything cleanly on Ctrl-C.
"""

from __future__ import annotations

import os
import re
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import httpx
import psutil
import pytest

from tests.support.server import free_port

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def readme_commands() -> list[str]:
    text = (REPO / "README.md").read_text()
    section = text.split("## The two commands", 1)[1]
    block = re.search(r"```sh\n(.*?)```", section, re.S)
    assert block, "README has no command block under 'The two commands'"
    return [line.split("#", 1)[0].strip() for line in block.group(1).splitlines() if line.strip()]


def test_readme_has_the_two_commands_and_ci_runs_the_test_one() -> None:
    main, tests = readme_commands()
    assert main == "make run" and tests == "make test-all"
    assert tests in (REPO / ".ci" / "run").read_text()


def test_main_command_from_a_clean_venv(tmp_path: Path) -> None:
    main, _ = readme_commands()
    hub_port = free_port()
    env = {**{k: v for k, v in os.environ.items() if not k.startswith(("TRAJGYM_", "VIRTUAL_ENV"))},
           "VENV": str(tmp_path / "venv"), "TRAJGYM_WORKDIR": str(tmp_path / "work"), "TRAJGYM_HUB_PORT": str(hub_port)}
    log = tmp_path / "main.log"
    started = time.monotonic()
    with open(log, "w") as out:
        proc = subprocess.Popen(main, shell=True, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT,  # noqa: S602 (our README)
                                start_new_session=True)
    try:
        deadline = time.monotonic() + 900
        while "dashboard: http" not in log.read_text(errors="replace"):
            assert proc.poll() is None, f"`{main}` exited early:\n{log.read_text()[-4000:]}"
            assert time.monotonic() < deadline, f"`{main}` did not finish:\n{log.read_text()[-4000:]}"
            time.sleep(1)
        elapsed = time.monotonic() - started
        output = log.read_text()
        assert (tmp_path / "venv" / "bin" / "trajgym").exists()  # it set up its own venv
        assert "AgentEval" in output and all(name in output for name in ("webshop", "household", "sql", "qa"))
        with sqlite3.connect(tmp_path / "work" / "trajgym.db") as db:
            per_env = dict(db.execute("SELECT env, COUNT(*) FROM episodes WHERE status = 'done' GROUP BY env").fetchall())
            assert set(per_env) == {"webshop", "household", "sql", "qa"} and all(n > 0 for n in per_env.values())
            assert db.execute("SELECT COUNT(*) FROM episodes WHERE outcome = 'infra_error'").fetchone()[0] == 0
            successes = db.execute("SELECT COUNT(*) FROM episodes WHERE status = 'done' AND success").fetchone()[0]
        exports = list((tmp_path / "work" / "export").glob("train-*.jsonl"))
        # the training set is the successful episodes (under WebShop's own reward one built-in goal's exact purchase is not)
        assert exports and sum(1 for _ in exports[0].open()) == successes >= sum(per_env.values()) - 1
        page = httpx.get(f"http://127.0.0.1:{hub_port}/dashboard", timeout=10)
        assert page.status_code == 200 and "quickstart-" in page.text
        print(f"\n[main command] `{main}` from a clean venv: dashboard up after {elapsed:.0f} s; episodes {per_env}")
    finally:
        os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C
        code = proc.wait(timeout=60)
    assert "stopping" in log.read_text()
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"http://127.0.0.1:{hub_port}/healthz", timeout=2)
    assert code in (0, 130, -signal.SIGINT), code  # the shell itself may end by the signal
    leftovers = [p for p in psutil.process_iter(["cmdline"]) if f"127.0.0.1:{hub_port}" in " ".join(p.info["cmdline"] or [])]
    assert not leftovers, [p.info["cmdline"] for p in leftovers]  # the env services are gone too
