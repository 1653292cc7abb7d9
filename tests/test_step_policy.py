"""Where env calls run (services/step_policy.py), and the v1 step fast path (services/fast_path.py)
answering exactly as the FastAPI route does."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import httpx
import pytest

from envs.sql.env import SqlEnv
from envs.types import Action, StepResult
from services.app import ServiceSettings, create_app
from services.step_policy import AdaptiveRule, OperationPlace, StepPolicyName, policy_of
from tests.support.counter_env import CounterEnv, InlineCounterEnv
from tests.support.server import running_server

CHEAP = (0.00001, 0.00001)  # wall, cpu


def test_adaptive_promotes_after_a_run_of_cheap_calls_in_threads() -> None:
    place = OperationPlace(StepPolicyName.adaptive, AdaptiveRule(promote_after=8))
    for _ in range(7):
        place.measured(*CHEAP, ran_inline=False)
    assert not place.inline
    place.measured(0.0001, 0.001, ran_inline=False)  # one CPU-expensive call restarts the run
    for _ in range(7):
        place.measured(*CHEAP, ran_inline=False)
    assert not place.inline
    place.measured(*CHEAP, ran_inline=False)
    assert place.inline
    # a call that waits (long wall, no CPU) is not cheap either
    waiting = OperationPlace(StepPolicyName.adaptive, AdaptiveRule(promote_after=2))
    for _ in range(10):
        waiting.measured(0.05, 0.00001, ran_inline=False)
    assert not waiting.inline


def test_adaptive_demotes_on_a_streak_of_long_calls_and_backs_off() -> None:
    rule = AdaptiveRule(promote_after=4, slow_streak=3)
    place = OperationPlace(StepPolicyName.adaptive, rule)
    for _ in range(4):
        place.measured(*CHEAP, ran_inline=False)
    assert place.inline
    # a preempted call (long wall, little CPU) now and then is not the env being slow
    for _ in range(5):
        place.measured(0.01, 0.00001, ran_inline=True)
        place.measured(*CHEAP, ran_inline=True)
    assert place.inline
    for _ in range(3):
        place.measured(0.01, 0.00001, ran_inline=True)
    assert not place.inline and place.demotions == 1 and place.needed == 8
    for _ in range(8):
        place.measured(*CHEAP, ran_inline=False)
    assert place.inline
    for _ in range(3):
        place.measured(0.05, 0.0, ran_inline=True)
    assert not place.inline and place.demotions == 2 and place.needed == 16


def test_fixed_policies_never_move() -> None:
    for policy, inline in ((StepPolicyName.thread, False), (StepPolicyName.inline, True)):
        place = OperationPlace(policy, AdaptiveRule(promote_after=1))
        for _ in range(5):
            place.measured(*CHEAP, ran_inline=inline)
            place.measured(1.0, 1.0, ran_inline=inline)
        assert place.inline is inline


def test_policy_of_env_declarations_and_overrides() -> None:
    assert policy_of(CounterEnv) is StepPolicyName.adaptive
    assert policy_of(InlineCounterEnv) is StepPolicyName.inline
    assert policy_of(CounterEnv, StepPolicyName.thread) is StepPolicyName.thread
    # steps that wait on other processes never run on the loop, whatever is asked
    assert policy_of(SqlEnv) is StepPolicyName.thread
    assert policy_of(SqlEnv, StepPolicyName.inline) is StepPolicyName.thread


class WhereEnv(CounterEnv):
    """Records the thread of each step; `add[9]` is slow (it sleeps)."""

    name = "where"
    threads: list[str] = []

    def act(self, action: Action) -> StepResult:
        WhereEnv.threads.append(threading.current_thread().name)
        if action.name == "add" and action.arguments["amount"] == "9":
            time.sleep(0.03)
        return super().act(action)


@pytest.fixture
def where_url() -> Iterator[str]:
    WhereEnv.threads = []
    with running_server(create_app(WhereEnv, settings=ServiceSettings(max_sessions=1000, max_sessions_per_client=1000))) as url:
        yield url


def _steps(http: httpx.Client, n: int, action: str) -> None:
    sid = http.post("/v1/sessions", json={"task_id": "counter-0"}).json()["session_id"]
    for _ in range(n):
        body = http.post(f"/v1/sessions/{sid}/step", json={"action": action}).json()
        if body["done"]:
            sid = http.post("/v1/sessions", json={"task_id": "counter-0"}).json()["session_id"]


def test_a_cheap_env_moves_onto_the_loop_and_back_to_threads_when_slow(where_url: str) -> None:
    with httpx.Client(base_url=where_url) as http:
        _steps(http, 200, "add[1]")
        early, late = WhereEnv.threads[:10], WhereEnv.threads[-10:]
        assert all(name.startswith("where-env") for name in early)  # measured in threads first
        assert all(name == "MainThread" or not name.startswith("where-env") for name in late)
        inline = http.get("/metrics").text
        assert 'trajgym_inline_env_calls_total{env="where"}' in inline
        WhereEnv.threads = []
        _steps(http, 8, "add[9]")  # slow steps: a few on the loop, then threads again
        on_loop = [name for name in WhereEnv.threads if not name.startswith("where-env")]
        assert len(on_loop) <= 3 and WhereEnv.threads[-1].startswith("where-env")


def test_step_policy_thread_keeps_every_step_in_threads() -> None:
    WhereEnv.threads = []
    app = create_app(WhereEnv, settings=ServiceSettings(step_policy=StepPolicyName.thread))
    with running_server(app) as url, httpx.Client(base_url=url) as http:
        _steps(http, 150, "add[1]")
    assert len(WhereEnv.threads) == 150 and all(name.startswith("where-env") for name in WhereEnv.threads)


class BuggyEnv(CounterEnv):
    name = "buggy"

    def act(self, action: Action) -> StepResult:
        if action.arguments.get("amount") == "7":
            raise ZeroDivisionError("seven")
        return super().act(action)


def _chunked(payload: bytes) -> Iterator[bytes]:
    yield payload  # a generator body: httpx sends it chunked, so the fast path hands it to FastAPI


def test_fast_path_answers_exactly_as_the_route() -> None:
    with running_server(create_app(BuggyEnv, settings=ServiceSettings(max_body_bytes=4096))) as url, httpx.Client(base_url=url) as http:
        fast_sid = http.post("/v1/sessions", json={"task_id": "counter-1"}).json()["session_id"]
        slow_sid = http.post("/v1/sessions", json={"task_id": "counter-1"}).json()["session_id"]
        for body in (b'{"action": "add[2]"}', b'{"action": {"name": "add", "arguments": {"amount": "3"}}}',
                     b'{"action": "add[x]"}', b'{"action": {"name": "warp", "arguments": {}}}', b'{"action": "add[7]"}',
                     b'{"nope": 1}', b'not json', b'{"action": "' + b"a" * 20_001 + b'"}'):
            fast = http.post(f"/v1/sessions/{fast_sid}/step", content=body, headers={"content-type": "application/json"})
            slow = http.post(f"/v1/sessions/{slow_sid}/step", content=_chunked(body), headers={"content-type": "application/json"})
            assert fast.status_code == slow.status_code, body[:60]
            assert fast.json() == slow.json(), body[:60]
            assert fast.headers["content-type"] == slow.headers["content-type"] == "application/json"
        assert http.post("/v1/sessions/nope/step", json={"action": "add[1]"}).json() == {"detail": "session nope is unknown"}
        too_big = http.post(f"/v1/sessions/{fast_sid}/step", json={"action": "add[" + "1" * 5000 + "]"})
        assert too_big.status_code == 413 and "4096" in too_big.json()["detail"]
        metrics = http.get("/metrics").text
        assert 'trajgym_errors_total{env="buggy",status="500"} 2.0' in metrics  # one per path


def test_step_response_json_is_the_step_response_model() -> None:
    from envs.types import StepResult
    from services.fast_path import step_response_json
    from wire.env_api import StepResponse

    result = StepResult(observation="x", reward=1, done=True, valid_actions=["a"], info={"progress": 0.5, "success": True})
    assert StepResponse.model_validate_json(step_response_json(4, result)) == StepResponse(
        **result.model_dump(), turn=4, progress=0.5)
