"""Every error case of the generic service has a real HTTP status and a JSON message."""

from __future__ import annotations

import subprocess
import sys

import asyncio
import threading
import time
from pathlib import Path

import httpx
import pytest

from clients.env_client import AsyncEnvClient
from wire.errors import EpisodeFinished, InvalidAction, ServerFull, SessionNotFound
from envs.types import Action, StepResult
from services.app import ServiceSettings, create_app
from tests.support.counter_env import CounterData, CounterEnv
from tests.support.server import running_server


def _new(http: httpx.Client, **body: object) -> str:
    r = http.post("/v1/sessions", json=body)
    assert r.status_code == 201, r.text
    return r.json()["session_id"]


def test_unknown_session_is_404(counter_url: str) -> None:
    with httpx.Client(base_url=counter_url) as http:
        for method, path in [("GET", ""), ("POST", "/step"), ("GET", "/actions"), ("GET", "/expert"), ("DELETE", "")]:
            r = http.request(method, f"/v1/sessions/not-a-session{path}", json={"action": "add[1]"} if method == "POST" else None)
            assert r.status_code == 404 and "unknown" in r.json()["detail"]


def test_unknown_task_is_404(counter_url: str) -> None:
    with httpx.Client(base_url=counter_url) as http:
        r = http.post("/v1/sessions", json={"task_id": "nope"})
        assert r.status_code == 404 and "nope" in r.json()["detail"]


def test_finished_episode_is_409(counter_url: str) -> None:
    with httpx.Client(base_url=counter_url) as http:
        sid = _new(http, task_id="counter-0")
        assert http.post(f"/v1/sessions/{sid}/step", json={"action": "finish[0]"}).json()["done"] is True
        r = http.post(f"/v1/sessions/{sid}/step", json={"action": "add[1]"})
        assert r.status_code == 409 and "finished" in r.json()["detail"]
        assert http.get(f"/v1/sessions/{sid}/expert").status_code == 409


@pytest.mark.parametrize("body", [
    {"action": ""},
    {"action": "   "},
    {"action": {"name": "teleport", "arguments": {}}},
    {"action": {"name": "add", "arguments": {}}},
    {"action": {"name": "add", "arguments": {"amount": "1", "extra": "x"}}},
    {"action": {"name": "add", "arguments": {"amount": ["1"]}}},
    {"action": 12},
    {"nothing": "here"},
    {"action": "x" * 20_001},
])
def test_malformed_action_is_422_and_changes_nothing(counter_url: str, body: dict) -> None:
    with httpx.Client(base_url=counter_url) as http:
        sid = _new(http, task_id="counter-1")
        r = http.post(f"/v1/sessions/{sid}/step", json=body)
        assert r.status_code == 422
        assert r.json()["detail"]
        state = http.get(f"/v1/sessions/{sid}").json()
        assert state["turns"] == 0 and "Current value: 0" in state["observation"]


def test_malformed_json_body_is_422(counter_url: str) -> None:
    with httpx.Client(base_url=counter_url) as http:
        sid = _new(http)
        r = http.post(f"/v1/sessions/{sid}/step", content=b"{not json", headers={"content-type": "application/json"})
        assert r.status_code == 422


def test_body_over_limit_is_413(counter_url: str) -> None:
    with httpx.Client(base_url=counter_url) as http:
        sid = _new(http)
        r = http.post(f"/v1/sessions/{sid}/step", json={"action": "a" * (2 << 20)})
        assert r.status_code == 413 and "larger than" in r.json()["detail"]


def test_full_server_is_429_with_retry_after() -> None:
    app = create_app(CounterEnv, settings=ServiceSettings(max_sessions=3, session_ttl=60))
    with running_server(app) as url, httpx.Client(base_url=url) as http:
        ids = [_new(http) for _ in range(3)]
        r = http.post("/v1/sessions", json={})
        assert r.status_code == 429
        assert int(r.headers["Retry-After"]) >= 1 and "limit" in r.json()["detail"]
        assert http.post("/create").status_code == 429  # the AgentGym surface shares the limit
        http.delete(f"/v1/sessions/{ids[0]}")
        assert http.post("/v1/sessions", json={}).status_code == 201  # a slot freed, never a shared session
        assert len(set(ids)) == 3


def test_expert_disabled_is_403() -> None:
    app = create_app(CounterEnv, settings=ServiceSettings(expert_enabled=False))
    with running_server(app) as url, httpx.Client(base_url=url) as http:
        sid = _new(http)
        r = http.get(f"/v1/sessions/{sid}/expert")
        assert r.status_code == 403 and "--no-expert" in r.json()["detail"]
        obs = http.post(f"/v1/sessions/{sid}/step", json={"action": "add[1]"}).json()
        assert "expert" not in str(obs).lower()


class SlowEnv(CounterEnv):
    """Detects two steps running at once on the same episode."""

    name = "slow"
    overlaps = 0
    _inside: set[int] = set()
    _guard = threading.Lock()

    def act(self, action: Action) -> StepResult:
        with self._guard:
            if id(self) in self._inside:
                SlowEnv.overlaps += 1
            self._inside.add(id(self))
        time.sleep(0.02)
        try:
            return super().act(action)
        finally:
            with self._guard:
                self._inside.discard(id(self))


async def test_concurrent_steps_on_one_session_are_serialised() -> None:
    app = create_app(SlowEnv, settings=ServiceSettings())
    with running_server(app) as url:
        async with AsyncEnvClient(url) as client:
            created = await client.create(task_id="counter-3")
            results = await asyncio.gather(*(client.step(created.session_id, "add[1]") for _ in range(10)))
    assert SlowEnv.overlaps == 0
    assert sorted(r.turn for r in results) == list(range(1, 11))
    assert sorted(r.observation for r in results) == sorted(f"Current value: {k}." for k in range(1, 11))


async def test_async_client_raises_typed_errors(counter_url: str) -> None:
    async with AsyncEnvClient(counter_url) as client:
        with pytest.raises(SessionNotFound):
            await client.step("missing", "add[1]")
        created = await client.create(task_id="counter-0")
        with pytest.raises(InvalidAction):
            await client.step(created.session_id, {"name": "warp", "arguments": {}})
        await client.step(created.session_id, "finish[5]")
        with pytest.raises(EpisodeFinished):
            await client.step(created.session_id, "add[1]")


async def test_async_client_create_retries_on_429_then_raises() -> None:
    app = create_app(CounterEnv, settings=ServiceSettings(max_sessions=1, session_ttl=1, reap_interval=0.2))
    with running_server(app) as url:
        async with AsyncEnvClient(url, retries=4) as client:
            await client.create()
            # the first session expires by TTL, so a retried create succeeds
            second = await client.create()
            assert second.session_id
        async with AsyncEnvClient(url, retries=0) as client:
            with pytest.raises(ServerFull):
                await client.create()


def test_cli_serve_unknown_env_names_the_problem(tmp_path: Path) -> None:
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-m", "cli.main", "serve", "no-such-env"], capture_output=True, text=True,
                       cwd=Path(__file__).resolve().parents[1], timeout=60)
    assert r.returncode == 2 and "unknown env 'no-such-env'" in r.stderr
    r = subprocess.run([sys.executable, "-m", "cli.main", "serve", "tests.support.counter_env:CounterEnv",
                        "--data-dir", str(tmp_path / "missing")], capture_output=True, text=True,
                       cwd=Path(__file__).resolve().parents[1], timeout=60)
    assert r.returncode == 2 and "does not exist" in r.stderr


def _serve_error(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "cli.main", "serve", *args, "--port", "1"], capture_output=True,
                          text=True, cwd=Path(__file__).resolve().parents[1], timeout=120)


def _one_error_line(r: subprocess.CompletedProcess[str]) -> str:
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert r.returncode == 2, r.stderr
    assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr
    assert "Traceback" not in r.stderr + r.stdout
    return lines[0]


def test_cli_serve_bad_data_dir_is_one_error_line(tmp_path: Path) -> None:
    """A missing --data-dir and one holding a symlink out: one `error:` line, exit 2, before uvicorn starts."""
    assert "does not exist" in _one_error_line(_serve_error("webshop", "--data-dir", "/nonexistent"))
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "items_shuffle.json").write_text("[]")
    data = tmp_path / "data"
    data.mkdir()
    (data / "items_ins_v2.json").write_text("{}")
    (data / "items_shuffle.json").symlink_to(outside / "items_shuffle.json")
    assert "outside the data directory" in _one_error_line(_serve_error("webshop", "--data-dir", str(data)))
    qa = tmp_path / "qa"
    qa.mkdir()
    (qa / "questions.json").symlink_to(outside / "items_shuffle.json")
    assert "outside the data directory" in _one_error_line(_serve_error("qa", "--data-dir", str(qa)))


def test_cli_serve_bad_mode_is_one_error_line() -> None:
    assert "has no mode" in _one_error_line(_serve_error("tests.support.counter_env:CounterEnv", "--mode", "grading=lenient"))
    assert "AXIS=VALUE" in _one_error_line(_serve_error("tests.support.counter_env:CounterEnv", "--mode", "grading"))


def test_step_before_reset_is_refused() -> None:
    env = CounterEnv(CounterData())
    with pytest.raises(Exception, match="reset"):
        env.step("add[1]")
