"""Constrained decoding: a regex of the env's actions for vLLM's structured outputs.

Small models ignore the ReAct and tool-call formats unless decoding is constrained.
ReAct: from the env's text templates (`search[{entity}]`, `take {obj} from {recep}`)
``Thought: <line>\\nAction: <one of the forms>``. Tools: a Hermes-style
``<tool_call>{"name": ..., "arguments": {...}}</tool_call>`` over the env's tool
schemas, which vLLM's `hermes` tool parser turns into `tool_calls` (the system prompt
explains the convention, `HERMES_TOOLS_PROMPT`, since small chat templates ignore
`tools`). Sent as vLLM's `structured_outputs: {"regex": ...}`. Unbounded `+` only: bounded repeats like
`{5,120}` make vLLM's regex compiler time out (shared/notes/real-model-server-on-cpu.md).
"""

from __future__ import annotations

import re
from typing import Any

from envs.types import EnvInfo

_PLACEHOLDER = re.compile(r"\{(\w+)\}")


_SPECIAL = set(".^$*+?{}[]\\|()/")


def _escape(literal: str) -> str:
    """Escape regex metacharacters only (spaces stay plain: grammar back ends reject `\\ `)."""
    return "".join("\\" + ch if ch in _SPECIAL else ch for ch in literal)


def form_regex(template: str) -> str:
    parts, pos = [], 0
    for m in _PLACEHOLDER.finditer(template):
        parts.append(_escape(template[pos : m.start()]))
        following = template[m.end() : m.end() + 1]
        # an argument closed by a bracket-like literal (`search[{x}]`) cannot contain it
        closer = following if following and not following.isalnum() and following != " " else ""
        parts.append(f"[^{_escape(closer)}\\n]+" if closer else "[^\\n]+")
        pos = m.end()
    parts.append(_escape(template[pos:]))
    return "".join(parts)


def react_regex(info: EnvInfo) -> str:
    forms = "|".join(form_regex(t) for t in info.text_actions)
    return f"Thought: [^\\n]+\\nAction: ({forms})"


def tool_call_regex(info: EnvInfo) -> str:
    calls = []
    for tool in info.tools:
        fn = tool["function"]
        args = ", ".join(f'"{_escape(p)}": "[^"\\n]+"' for p in fn["parameters"].get("properties", {}))
        calls.append(f'\\{{"name": "{_escape(fn["name"])}", "arguments": \\{{{args}\\}}\\}}')
    return f"<tool_call>({'|'.join(calls)})</tool_call>"


HERMES_TOOLS_PROMPT = ("You can call these tools (JSON schemas): <tools>{tools}</tools>\n"
                       "To call a tool, reply with exactly: <tool_call>{{\"name\": <tool name>, \"arguments\": "
                       "<JSON object>}}</tool_call>")


def hermes_tools_prompt(info: EnvInfo) -> str:
    import json

    return HERMES_TOOLS_PROMPT.format(tools=json.dumps([t["function"] for t in info.tools]))


def structured_outputs(info: EnvInfo, tools: bool = False) -> dict[str, Any]:
    return {"structured_outputs": {"regex": tool_call_regex(info) if tools else react_regex(info)}}
