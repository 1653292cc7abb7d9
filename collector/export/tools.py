"""The `tools` of an exported row: the env's own OpenAI tool schemas when the run used native tool calls.

Schemas are the ones stored with the run (its provenance: exactly what the model was
sent, or for an expert run in the tools format the schemas its calls follow). For a run stored without them (collected before provenance was recorded) they
come from the registered env class (`Env.tools`, a class attribute: no data is loaded);
for an env this installation does not know, they are inferred from the calls the
episode made (names and argument keys only).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from collector.export.formats import inferred_tools
from collector.export.source import EpisodeMeta


@lru_cache(maxsize=64)
def _env_tools(env: str) -> tuple[dict[str, Any], ...] | None:
    from envs.registry import UnknownEnv, load_class

    try:
        cls = load_class(env)
    except UnknownEnv:
        return None
    return tuple(t.json_schema() for t in cls.tools)


def used_tools(e: EpisodeMeta) -> bool:
    return e.policy == "model" and e.prompt_format == "tools"


def stored_tools(run: dict[str, Any]) -> list[dict[str, Any]] | None:
    """The tool schemas a run sent, from its provenance (None: not recorded, or none sent)."""
    prov = run.get("provenance")
    tools = prov.get("tools") if isinstance(prov, dict) else None
    return tools if isinstance(tools, list) and tools else None


def tools_for(e: EpisodeMeta, turns: list[dict[str, Any]],
              stored: list[dict[str, Any]] | None = None) -> list[dict[str, Any]] | None:
    """Tool schemas for a row, or None when the episode did not use native tool calling."""
    if not used_tools(e) and not any(t["tool_calls"] for t in turns):
        return None
    if stored is not None:
        return [dict(t) for t in stored]
    known = _env_tools(e.env)
    if known is not None:
        return [dict(t) for t in known]
    return inferred_tools(turns)
