"""Prompt building and action parsing for the two prompt formats.

ReAct text: a system prompt listing the env's action forms and asking for
``Thought: ...`` / ``Action: ...``; the action is the text after the last
``Action:`` (up to a hallucinated ``Observation:``/``Thought:``). Native tools: the
env's OpenAI tool schemas are sent as `tools`; the first tool call is the action.
The expert's text actions become tool calls through the env's own action forms
(`as_tool_call`), so an expert run in the tools format is native tool-calling data.
"""

from __future__ import annotations

import json
import re
from typing import Any

from pydantic import ValidationError

from envs.actions import ActionParseError, ActionParser
from envs.types import EnvInfo, ToolCall, ToolParam, ToolSpec

MAX_LISTED_ACTIONS = 50
_ACTION = re.compile(r"Action\s*:", re.IGNORECASE)
_CUT = re.compile(r"\n\s*(Observation|Thought)\s*:", re.IGNORECASE)

REACT_FORMAT = ("Work step by step. At every turn reply with exactly two lines:\n"
                "Thought: <your reasoning>\nAction: <one action>\n"
                "Then wait for the observation.")
TOOLS_FORMAT = "At every turn call exactly one of the provided tools; the result of the call is your next observation."


class ParseFailure(ValueError):
    """The reply holds no usable action; the message is fed back to the model."""


def react_system_prompt(info: EnvInfo) -> str:
    lines = [info.system_prompt.strip()] if info.system_prompt.strip() else [
        f"You are an agent acting in the {info.name} environment. {info.description}".strip()]
    lines.append("")
    lines.append("Available actions:")
    descriptions = [t.get("function", {}).get("description", "") for t in info.tools]
    for i, form in enumerate(info.text_actions):
        desc = descriptions[i] if i < len(descriptions) and len(descriptions) == len(info.text_actions) else ""
        lines.append(f"- {form}" + (f": {desc}" if desc else ""))
    lines.append("")
    lines.append(REACT_FORMAT)
    return "\n".join(lines)


def tools_system_prompt(info: EnvInfo, hermes: bool = False) -> str:
    """`hermes`: also spell the tools and the <tool_call> convention out, for chat templates that ignore `tools`."""
    head = info.system_prompt.strip() or f"You are an agent acting in the {info.name} environment. {info.description}".strip()
    if hermes:
        from collector.constrain import hermes_tools_prompt

        return f"{head}\n\n{TOOLS_FORMAT}\n{hermes_tools_prompt(info)}"
    return f"{head}\n\n{TOOLS_FORMAT}"


def observation_text(observation: str, valid_actions: list[str] | None, instruction: str | None = None) -> str:
    parts = []
    if instruction and instruction not in observation:
        parts.append(f"Task: {instruction}")
    parts.append(f"Observation: {observation}")
    if valid_actions:
        shown = valid_actions[:MAX_LISTED_ACTIONS]
        more = f" (+{len(valid_actions) - len(shown)} more)" if len(valid_actions) > len(shown) else ""
        parts.append("Valid actions: " + ", ".join(shown) + more)
    return "\n".join(parts)


def parse_react(text: str | None) -> str:
    if not text:
        raise ParseFailure("Your reply was empty. Reply with 'Thought: ...' and 'Action: <action>'.")
    matches = list(_ACTION.finditer(text))
    if not matches:
        raise ParseFailure("Your reply has no 'Action:' line. Reply with 'Thought: ...' and 'Action: <action>'.")
    action = text[matches[-1].end():]
    cut = _CUT.search(action)
    if cut:
        action = action[: cut.start()]
    action = action.strip().strip("`").strip()
    if not action:
        raise ParseFailure("The 'Action:' line is empty. Give exactly one action after 'Action:'.")
    return action


def parse_tool_call(tool_calls: list[dict[str, Any]] | None) -> tuple[ToolCall, str | None]:
    """First tool call → (ToolCall, its id). Raises `ParseFailure` when absent or malformed."""
    if not tool_calls:
        raise ParseFailure("You did not call a tool. Call exactly one of the provided tools.")
    call = tool_calls[0]
    fn = call.get("function") or {}
    name = fn.get("name")
    raw = fn.get("arguments") or "{}"
    try:
        args = json.loads(raw) if isinstance(raw, str) else raw
    except ValueError as err:
        raise ParseFailure(f"The arguments of {name!r} are not valid JSON: {err}") from err
    if not isinstance(name, str) or not name or not isinstance(args, dict):
        raise ParseFailure("A tool call needs a tool name and a JSON object of arguments.")
    try:
        return ToolCall(name=name, arguments=args), call.get("id")
    except ValidationError as err:  # e.g. a name of 10,000 characters
        raise ParseFailure(f"The tool call is not usable: {err.errors()[0].get('msg', 'invalid')}.") from err


def action_parser(info: EnvInfo) -> ActionParser:
    """The env's verbs rebuilt from its info: tool schemas and text forms are listed in the same order."""
    if len(info.tools) != len(info.text_actions):
        raise ValueError(f"env {info.name} lists {len(info.tools)} tools but {len(info.text_actions)} text forms")
    specs = []
    for tool, form in zip(info.tools, info.text_actions):
        fn = tool.get("function") or {}
        props = (fn.get("parameters") or {}).get("properties") or {}
        specs.append(ToolSpec(name=fn.get("name", ""), description=fn.get("description", ""), text_template=form,
                              params=[ToolParam(name=k, description=(v or {}).get("description", ""))
                                      for k, v in props.items()]))
    return ActionParser(specs)


def as_tool_call(parser: ActionParser, text: str) -> ToolCall:
    """A text action (the expert's) as the tool call that names the same action; ValueError when it fits no form."""
    try:
        action = parser.parse_text(text)
    except ActionParseError as err:
        raise ValueError(str(err)) from err
    return ToolCall(name=action.name, arguments=dict(action.arguments))


def tool_call_message(call: ToolCall, call_id: str) -> dict[str, Any]:
    """OpenAI `tool_calls` entry (arguments as JSON text, as model servers return them)."""
    return {"id": call_id, "type": "function",
            "function": {"name": call.name, "arguments": json.dumps(call.arguments, ensure_ascii=False)}}
