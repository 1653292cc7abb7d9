"""Expected conditions anywhere in the CLI are one `error:` line and exit 2; `--debug` shows the traceback instead."""

from __future__ import annotations

import os
import socket
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from cli import errors
from cli.errors import ErrorMappingGroup, expected_error
from tests.support.server import free_port

REPO = Path(__file__).resolve().parents[1]


def trajgym(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRAJGYM_")}
    return subprocess.run([sys.executable, "-m", "cli.main", *args], cwd=REPO, env={**env, "PYTHONPATH": str(REPO)},
                          capture_output=True, text=True, timeout=timeout)


def one_error_line(r: subprocess.CompletedProcess[str]) -> str:
    lines = [line for line in (r.stderr + r.stdout).splitlines() if line.strip()]
    assert r.returncode == 2, r.stderr + r.stdout
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    return lines[0]


def test_debug_shows_the_traceback_of_an_expected_error() -> None:
    assert "unknown env 'nope'" in one_error_line(trajgym("serve", "nope"))
    r = trajgym("--debug", "serve", "nope")
    assert r.returncode not in (0, 2) and "UnknownEnv" in r.stderr and "load_class" in r.stderr


def test_a_taken_port_names_the_port() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        line = one_error_line(trajgym("serve", "tests.support.counter_env:CounterEnv", "--port", str(port)))
        assert f"port {port} on 127.0.0.1 is already in use" in line
        line = one_error_line(trajgym("hub", "--port", str(port), "--token", "t", "--store", "sqlite:///:memory:"))
        assert f"port {port} on 127.0.0.1 is already in use" in line
        line = one_error_line(trajgym("quickstart", "--hub-port", str(port), "--workdir", "/nonexistent/never-created"))
        assert f"port {port} (the hub and its dashboard) is already in use" in line and "make run" in line
    assert not Path("/nonexistent/never-created").exists()


def test_a_bad_workdir_is_one_error_line(tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("x")
    line = one_error_line(trajgym("quickstart", "--workdir", str(tmp_path / "a-file" / "work"), "--hub-port", str(free_port())))
    assert "Not a directory" in line or "File exists" in line


def test_a_store_that_is_not_a_database_is_one_error_line(tmp_path: Path) -> None:
    bad = tmp_path / "not-a-db.db"
    bad.write_bytes(b"this is not sqlite" * 100)
    line = one_error_line(trajgym("runs", "--store", f"sqlite:///{bad}"))
    assert line.startswith("error: the store failed: ") and "not a database" in line


def test_the_mapping_of_expected_exceptions() -> None:
    from sqlalchemy.exc import OperationalError

    from clients.hub_client import HubUnavailable, NoHealthyReplica
    from envs.base import DataDirError
    from services.ports import PortInUse

    locked = OperationalError("INSERT ...", {}, sqlite3.OperationalError("database is locked"))
    assert "locked by another process" in (expected_error(locked) or "")
    assert expected_error(NoHealthyReplica("env 'webshop' has no healthy replica")) == "env 'webshop' has no healthy replica"
    assert (expected_error(HubUnavailable("GET http://h/v1/envs failed")) or "").startswith("the hub is not reachable")
    assert "port 9 on 127.0.0.1 is already in use" in (expected_error(PortInUse("127.0.0.1", 9)) or "")
    assert expected_error(DataDirError("data directory /x does not exist")) == "data directory /x does not exist"
    assert expected_error(PermissionError(13, "Permission denied", "/root/x")) == "Permission denied: /root/x"
    assert expected_error(errors.CommandError("line one\n  line two")) == "line one line two"  # always one line
    assert expected_error(ValueError("a bug")) is None and expected_error(KeyError("k")) is None


def test_the_group_maps_errors_of_any_command(monkeypatch: pytest.MonkeyPatch) -> None:
    from clients.hub_client import HubUnavailable

    app = typer.Typer(cls=ErrorMappingGroup)

    @app.callback()
    def root() -> None:
        pass

    @app.command()
    def hub_down() -> None:
        raise HubUnavailable("GET http://127.0.0.1:9/v1/envs failed: connection refused")

    @app.command()
    def bug() -> None:
        raise ValueError("not an expected condition")

    result = CliRunner().invoke(app, ["hub-down"])
    assert result.exit_code == 2 and result.output.strip().startswith("error: the hub is not reachable")
    result = CliRunner().invoke(app, ["bug"])
    assert isinstance(result.exception, ValueError)  # a bug keeps its traceback
    monkeypatch.setattr(errors, "DEBUG", True)
    result = CliRunner().invoke(app, ["hub-down"])
    assert isinstance(result.exception, HubUnavailable)


def test_collect_with_the_hub_down_is_one_error_line(tmp_path: Path) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    line = one_error_line(trajgym("collect", "--env", "counter", "--hub", dead, "--policy", "expert", "--store",
                                  str(tmp_path / "runs.db"), "--run-name", "x", "--quiet"))
    assert "HubUnavailable" in line and dead in line
