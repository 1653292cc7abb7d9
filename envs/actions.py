"""The one place where actions are parsed: ReAct text and native tool calls.

Each env declares its verbs as `ToolSpec`s. A text action is matched against each
verb's `text_template` (``search[{keywords}]``, ``take {obj} from {recep}``); a tool
call is checked against the verb's parameters. Both produce the same `Action`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from envs.types import Action, ToolCall, ToolSpec

_PLACEHOLDER = re.compile(r"\{(\w+)\}")


class ActionParseError(ValueError):
    """The action is malformed: empty, oversized, or a tool call that fits no tool.

    The service answers it with 422. The message says what is expected."""


class UnknownActionForm(ActionParseError):
    """Text that matches none of the env's action forms. Envs answer it with feedback."""


def _template_regex(template: str) -> re.Pattern[str]:
    parts: list[str] = []
    pos = 0
    for m in _PLACEHOLDER.finditer(template):
        literal = template[pos : m.start()]
        parts.append(r"\s+".join(re.escape(w) for w in literal.split(" ")))
        parts.append(f"(?P<{m.group(1)}>.*?)")
        pos = m.end()
    literal = template[pos:]
    parts.append(r"\s+".join(re.escape(w) for w in literal.split(" ")))
    return re.compile("^" + "".join(parts) + "$", re.IGNORECASE | re.DOTALL)


def _clean_text(text: str) -> str:
    text = text.strip()
    if text.endswith("</s>"):
        text = text[: -len("</s>")].rstrip()
    return text


class ActionParser:
    """Parses text and tool calls for one env's verbs (built once per env class)."""

    def __init__(self, tools: Sequence[ToolSpec], max_len: int = 20_000) -> None:
        self.tools = {t.name: t for t in tools}
        self.max_len = max_len
        # Longer literal prefixes first so `go to {x}` wins over a catch-all.
        ordered = sorted(tools, key=lambda t: -len(_PLACEHOLDER.split(t.text_template)[0]))
        self._patterns = [(t, _template_regex(t.text_template)) for t in ordered]

    def forms(self) -> list[str]:
        return [t.text_template for t in self.tools.values()]

    def render(self, name: str, arguments: dict[str, str]) -> str:
        return self.tools[name].text_template.format(**arguments)

    def parse_text(self, text: str) -> Action:
        text = _clean_text(text)
        if not text:
            raise ActionParseError("empty action")
        if len(text) > self.max_len:
            raise ActionParseError(f"action longer than {self.max_len} characters")
        for tool, pattern in self._patterns:
            m = pattern.match(text)
            if m:
                args = {k: v.strip() for k, v in m.groupdict().items()}
                return Action(name=tool.name, arguments=args, text=text)
        raise UnknownActionForm(f"{text[:200]!r} is not a valid action; expected one of: {', '.join(self.forms())}")

    def parse_tool_call(self, call: ToolCall) -> Action:
        tool = self.tools.get(call.name)
        if tool is None:
            raise ActionParseError(f"unknown tool {call.name!r}; tools: {', '.join(self.tools)}")
        expected = {p.name for p in tool.params}
        given = set(call.arguments)
        if given != expected:
            missing, extra = sorted(expected - given), sorted(given - expected)
            detail = "; ".join(s for s in (f"missing {missing}" if missing else "", f"unexpected {extra}" if extra else "") if s)
            raise ActionParseError(f"tool {call.name!r} takes arguments {sorted(expected)}: {detail}")
        args: dict[str, str] = {}
        for key, value in call.arguments.items():
            if not isinstance(value, (str, int, float)) or isinstance(value, bool):
                raise ActionParseError(f"argument {key!r} of {call.name!r} must be a string")
            args[key] = str(value).strip()
        text = tool.text_template.format(**args)
        if len(text) > self.max_len:
            raise ActionParseError(f"action longer than {self.max_len} characters")
        return Action(name=tool.name, arguments=args, text=text)

    def parse(self, action: str | ToolCall | dict[str, Any]) -> Action:
        if isinstance(action, str):
            return self.parse_text(action)
        if isinstance(action, dict):
            action = ToolCall.model_validate(action)
        return self.parse_tool_call(action)
