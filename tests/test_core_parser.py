"""The action parser: templates, tool calls, and properties over arbitrary input."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from envs.actions import ActionParseError, ActionParser, UnknownActionForm
from envs.types import ToolCall, ToolParam, ToolSpec
from tests.support.counter_env import CounterEnv

TOOLS = [
    ToolSpec(name="search", description="", params=[ToolParam(name="keywords")], text_template="search[{keywords}]"),
    ToolSpec(name="take", description="", params=[ToolParam(name="obj"), ToolParam(name="recep")], text_template="take {obj} from {recep}"),
    ToolSpec(name="look", description="", text_template="look"),
]
parser = ActionParser(TOOLS)


@pytest.mark.parametrize("text,name,args", [
    ("search[red shoes]", "search", {"keywords": "red shoes"}),
    ("  Search[ a]b ]</s>", "search", {"keywords": "a]b"}),
    ("search[]", "search", {"keywords": ""}),
    ("take mug 1 from desk 2", "take", {"obj": "mug 1", "recep": "desk 2"}),
    ("take  mug 1   from desk 2", "take", {"obj": "mug 1", "recep": "desk 2"}),
    ("LOOK", "look", {}),
])
def test_text_forms(text: str, name: str, args: dict) -> None:
    action = parser.parse(text)
    assert (action.name, action.arguments) == (name, args)


def test_tool_call_renders_canonical_text() -> None:
    action = parser.parse(ToolCall(name="take", arguments={"obj": "mug 1", "recep": "desk 2"}))
    assert action.text == "take mug 1 from desk 2"
    assert parser.parse({"name": "search", "arguments": {"keywords": 42}}).text == "search[42]"


@pytest.mark.parametrize("bad", [
    {"name": "fly", "arguments": {}},
    {"name": "take", "arguments": {"obj": "x"}},
    {"name": "take", "arguments": {"obj": "x", "recep": "y", "z": "w"}},
    {"name": "search", "arguments": {"keywords": None}},
    {"name": "search", "arguments": {"keywords": True}},
])
def test_malformed_tool_calls(bad: dict) -> None:
    with pytest.raises(ActionParseError):
        parser.parse(bad)


def test_unknown_text_is_its_own_error() -> None:
    with pytest.raises(UnknownActionForm, match="expected one of"):
        parser.parse("dance")


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300))
def test_arbitrary_text_never_raises_anything_else(text: str) -> None:
    try:
        parser.parse(text)
    except ActionParseError:
        pass


json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
                           lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3),
                           max_leaves=10)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=20), st.dictionaries(st.text(max_size=10), json_values, max_size=4))
def test_arbitrary_tool_calls_never_raise_anything_else(name: str, arguments: dict) -> None:
    try:
        parser.parse({"name": name, "arguments": arguments})
    except (ActionParseError, ValueError):
        pass


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=100))
def test_invalid_text_never_changes_env_state(text: str) -> None:
    env = CounterEnv(CounterEnv.load())
    env.reset(task_id="counter-5")
    try:
        result = env.step(text)
    except ActionParseError:
        assert env.turns == 0 and env.value == 0
        return
    if result.info.get("invalid_action"):
        assert env.value == 0 and not env.done
