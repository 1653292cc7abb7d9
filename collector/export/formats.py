"""Stored turns → training rows: AgentGym/AgentInstruct `conversations` and OpenAI/TRL `messages`.

Loss masking is explicit. Only assistant replies are ever trained on. With
`mask_refused` (the default) an assistant reply that the env never executed — it was
answered by format/invalid-action feedback, or the episode ended before it ran — is
also masked (`loss: false` / `weight: 0`): the model should not learn refused replies.
System, user (instruction, observations, feedback) and tool messages are never trained on.

AgentGym rows: consecutive non-assistant messages (the system prompt, the first
observation, tool results) merge into one `human` turn joined by a blank line, so the
conversation alternates human/gpt; trailing human turns after the last reply are
dropped. Native tool calls are rendered in the gpt text as
`<tool_call>{"name": ..., "arguments": {...}}</tool_call>` lines after the reply text.

Every row carries its provenance as flat fields (see `PROVENANCE`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from collector.export.source import EpisodeMeta

PROVENANCE = ("run", "run_id", "episode_id", "model", "policy", "env", "split", "task_id", "sample", "outcome",
              "success", "reward", "progress", "turns")


def row_id(e: EpisodeMeta) -> str:
    return f"{e.run}:{e.id}"


def provenance(e: EpisodeMeta) -> dict[str, Any]:
    return {"run": e.run, "run_id": e.run_id, "episode_id": e.id, "model": e.model, "policy": e.policy, "env": e.env,
            "split": e.split, "task_id": e.task_id, "sample": e.sample, "outcome": e.outcome, "success": e.success,
            "reward": e.reward, "progress": e.progress, "turns": e.turns}


def executed_replies(turns: Sequence[dict[str, Any]]) -> list[bool]:
    """For each turn: True for an assistant reply whose action the env executed (a later turn before the
    next reply carries an `action`), False otherwise (and for every non-assistant turn)."""
    out = [False] * len(turns)
    pending: int | None = None
    for i, t in enumerate(turns):
        if t["role"] == "assistant":
            pending = i
        elif pending is not None and t["action"] is not None:
            out[pending] = True
            pending = None
    return out


def normalize_tool_calls(calls: Sequence[dict[str, Any]] | None) -> list[dict[str, Any]] | None:
    """OpenAI shape `{id, type: function, function: {name, arguments: JSON string}}` (extra keys dropped)."""
    if not calls:
        return None
    out = []
    for c in calls:
        fn = c.get("function") or {}
        args = fn.get("arguments")
        if args is None:
            args = "{}"
        elif not isinstance(args, str):
            args = json.dumps(args, ensure_ascii=False)
        out.append({"id": c.get("id"), "type": "function", "function": {"name": fn.get("name"), "arguments": args}})
    return out


def _render_call(call: dict[str, Any]) -> str:
    raw = call["function"]["arguments"]
    try:
        args: Any = json.loads(raw)
    except ValueError:
        args = raw
    return "<tool_call>" + json.dumps({"name": call["function"]["name"], "arguments": args}, ensure_ascii=False) + \
        "</tool_call>"


def to_conversations(e: EpisodeMeta, turns: Sequence[dict[str, Any]], *, mask_refused: bool = True) -> dict[str, Any]:
    """AgentGym / AgentInstruct row: `{"id", "conversations": [{"from", "value", "loss"}], **provenance}`."""
    executed = executed_replies(turns)
    conv: list[dict[str, Any]] = []
    human: list[str] = []
    for t, ran in zip(turns, executed):
        if t["role"] != "assistant":
            human.append(t["content"] or "")
            continue
        if human:
            conv.append({"from": "human", "value": "\n\n".join(human), "loss": False})
            human = []
        parts = [t["content"]] if t["content"] else []
        parts.extend(_render_call(c) for c in normalize_tool_calls(t["tool_calls"]) or [])
        conv.append({"from": "gpt", "value": "\n".join(parts), "loss": ran or not mask_refused})
    return {"id": row_id(e), "conversations": conv, **provenance(e)}


def to_messages(e: EpisodeMeta, turns: Sequence[dict[str, Any]], tools: list[dict[str, Any]] | None, *,
                mask_refused: bool = True) -> dict[str, Any]:
    """OpenAI / TRL row: `{"id", "messages", ["tools"], **provenance}`; assistant messages carry `weight` 1/0."""
    executed = executed_replies(turns)
    msgs: list[dict[str, Any]] = []
    for t, ran in zip(turns, executed):
        m: dict[str, Any] = {"role": t["role"], "content": t["content"] or ""}
        if t["role"] == "assistant":
            calls = normalize_tool_calls(t["tool_calls"])
            if calls:
                m["tool_calls"] = calls
            m["weight"] = 1 if (ran or not mask_refused) else 0
        elif t["role"] == "tool":
            m["tool_call_id"] = t["tool_call_id"]
        msgs.append(m)
    row: dict[str, Any] = {"id": row_id(e), "messages": msgs}
    if tools:
        row["tools"] = tools
    row.update(provenance(e))
    return row


def inferred_tools(turns: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Minimal tool schemas from the calls an episode made (used when the env's own schemas are unknown)."""
    seen: dict[str, set[str]] = {}
    for t in turns:
        for c in normalize_tool_calls(t["tool_calls"]) or []:
            name = c["function"]["name"]
            try:
                args = json.loads(c["function"]["arguments"])
            except ValueError:
                args = {}
            seen.setdefault(name, set()).update(args if isinstance(args, dict) else {})
    return [{"type": "function", "function": {"name": name, "description": "", "parameters": {
        "type": "object", "properties": {a: {"type": "string"} for a in sorted(params)}, "required": []}}}
            for name, params in sorted(seen.items())]
