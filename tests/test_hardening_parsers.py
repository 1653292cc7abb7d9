"""Property tests (hypothesis) of the action parsing of the four real envs.

For each env (built-in data): arbitrary text, text shaped like one of the env's action forms
with arbitrary arguments, and arbitrary JSON tool calls
  * never raise anything from `parse_action` but the documented `ActionParseError`
    (plus pydantic's `ValidationError` for dicts that are not tool calls at all — the HTTP
    layer answers both with 422);
  * never raise anything from `step` but `ActionParseError`;
  * never change the episode's state when the input is invalid: a malformed action changes
    nothing at all (not even the turn count); an unknown form or an action the env flags as
    invalid in the current state changes nothing but the turn count and last observation.
"""

from __future__ import annotations

import copy
import re
from functools import cache
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from envs.actions import ActionParseError
from envs.base import Env
from envs.registry import load_class
from envs.types import StepResult, ToolCall

ENVS = ["webshop", "household", "sql", "qa"]
PROPS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@cache
def env_and_data(name: str) -> tuple[type[Env], Any]:
    cls = load_class(name)
    return cls, cls.load(None)


def snapshot(name: str, env: Any) -> Any:
    """Everything an action could change in one episode of `name` (turn count aside)."""
    if name == "webshop":
        return copy.deepcopy(env.state), env.searches, env.done, env.total_reward
    if name == "household":
        return copy.deepcopy(env.state), env.won, set(env.tracker.reached), env.done, env.total_reward
    if name == "sql":
        db = env.db.snapshot() if env.db is not None else None
        return db, list(env.executed), env.last_sql, env.last_rows, env.done, env.total_reward
    if name == "qa":
        return (env.page, set(env.visited), env.answer_seen, env.lookup_keyword, list(env.lookup_hits),
                env.lookup_cursor, env.succeeded, env.done, env.total_reward)
    raise AssertionError(name)


def flagged_invalid(name: str, result: StepResult) -> bool:
    """The env's own signal that an action was refused in the current state."""
    if result.info.get("invalid_action"):
        return True
    if name == "household":
        return result.info.get("admissible") is False
    if name == "sql":
        return bool(result.info.get("error"))
    return False


def fresh(name: str, seed: int, warm: bool) -> Env:
    """An env reset on task `seed`; `warm` first plays one expert step so the state is not the initial one."""
    cls, data = env_and_data(name)
    env = cls(data)
    env.reset(seed=seed)
    if warm:
        env.step(env.expert_action())
        if env.done:
            env.reset(seed=seed)
    return env


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=40),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3),
    max_leaves=8,
)


def text_actions(name: str) -> st.SearchStrategy[str]:
    cls = load_class(name)
    templates = [t.text_template for t in cls.tools]
    arg = st.text(max_size=60) | st.sampled_from(["", " ", "]", "[", "{x}", "1", "item 1", "Buy Now", "';--", "\x00"])

    def fill(template: str, values: list[str]) -> str:
        supply = iter(values)
        return re.sub(r"\{\w+\}", lambda _: next(supply, ""), template)

    shaped = st.builds(fill, st.sampled_from(templates), st.lists(arg, min_size=2, max_size=2))
    return st.one_of(st.text(max_size=300), shaped, shaped.map(lambda t: "  " + t.upper() + " </s>"))


def tool_calls(name: str) -> st.SearchStrategy[ToolCall]:
    cls = load_class(name)
    names = st.sampled_from([t.name for t in cls.tools]) | st.text(min_size=1, max_size=20)
    keys = st.sampled_from(sorted({p.name for t in cls.tools for p in t.params}) or ["x"]) | st.text(max_size=8)
    return st.builds(ToolCall, name=names, arguments=st.dictionaries(keys, json_values, max_size=3))


def check_step(name: str, env: Env, action: Any) -> None:
    before, turns, observation = snapshot(name, env), env.turns, env.last_observation
    try:
        result = env.step(action)
    except ActionParseError:
        assert snapshot(name, env) == before and env.turns == turns and env.last_observation == observation
        return
    assert isinstance(result, StepResult) and isinstance(result.observation, str)
    assert env.turns == turns + 1
    if flagged_invalid(name, result):
        after = snapshot(name, env)
        if result.truncated:  # the turn limit ends the episode whatever the action was
            after, before = after[:-2], before[:-2]
        assert after == before, f"{action!r} was flagged invalid but changed the state"


@pytest.mark.parametrize("name", ENVS)
def test_parse_arbitrary_text_raises_only_action_parse_error(name: str) -> None:
    cls, _ = env_and_data(name)

    @PROPS
    @given(text=text_actions(name))
    def prop(text: str) -> None:
        env = cls(env_and_data(name)[1])
        try:
            action = env.parse_action(text)
        except ActionParseError:
            return
        assert action.name in {t.name for t in cls.tools}

    prop()


@pytest.mark.parametrize("name", ENVS)
def test_parse_arbitrary_tool_calls_raises_only_action_parse_error(name: str) -> None:
    cls, data = env_and_data(name)

    @PROPS
    @given(call=tool_calls(name), raw=st.dictionaries(st.text(max_size=10), json_values, max_size=3))
    def prop(call: ToolCall, raw: dict[str, Any]) -> None:
        env = cls(data)
        try:
            action = env.parse_action(call)
            assert action.name == call.name and set(action.arguments) == set(call.arguments)
        except ActionParseError:
            pass
        try:
            env.parse_action(raw)  # not even a tool call: a dict of anything
        except (ActionParseError, ValidationError):
            pass

    prop()


@pytest.mark.parametrize("name", ENVS)
def test_step_with_arbitrary_text_never_changes_state_when_invalid(name: str) -> None:
    @PROPS
    @given(text=text_actions(name), seed=st.integers(0, 50), warm=st.booleans())
    def prop(text: str, seed: int, warm: bool) -> None:
        env = fresh(name, seed, warm)
        try:
            check_step(name, env, text)
        finally:
            env.close()

    prop()


@pytest.mark.parametrize("name", ENVS)
def test_step_with_arbitrary_tool_calls_never_changes_state_when_invalid(name: str) -> None:
    @PROPS
    @given(call=tool_calls(name), seed=st.integers(0, 50), warm=st.booleans())
    def prop(call: ToolCall, seed: int, warm: bool) -> None:
        env = fresh(name, seed, warm)
        try:
            check_step(name, env, call)
        finally:
            env.close()

    prop()


def test_the_state_check_can_fail() -> None:
    """Guard against a vacuous snapshot: a valid expert step does change the state of every env."""
    for name in ENVS:
        env = fresh(name, 0, False)
        before = snapshot(name, env)
        env.step(env.expert_action())
        assert snapshot(name, env) != before, name
        env.close()

