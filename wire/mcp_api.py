"""Bodies of the MCP surface: the episode-control tools and the structured content every tool answers.

An env's own tools (its `ToolSpec`s) are served as MCP tools unchanged; beside them three
tools control the episode of the MCP session (one env session per MCP session):
`episode_start` (a task by id, or by seed within a split), `episode_observation` and
`episode_close`. Every result carries `EpisodeContent` as structured content: the
observation text, reward, done, truncated, the env's info, and the session id (which the
v1 API accepts too, e.g. for `/v1/sessions/{id}/expert`).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from envs.types import Split, ToolSpec

EPISODE_START = "episode_start"
EPISODE_OBSERVATION = "episode_observation"
EPISODE_CLOSE = "episode_close"
CONTROL_TOOLS = (EPISODE_START, EPISODE_OBSERVATION, EPISODE_CLOSE)


class EpisodeStart(BaseModel):
    model_config = ConfigDict(extra="forbid")

    task_id: str | None = Field(default=None, max_length=500)
    seed: int | None = Field(default=None, ge=0, le=2**63 - 1)
    split: Split | None = None


class EpisodeContent(BaseModel):
    """Structured content of every tool result on the MCP surface."""

    session_id: str | None = Field(default=None, description="the env session of this MCP session (a v1 session id)")
    task_id: str | None = None
    instruction: str = ""
    observation: str = ""
    reward: float = Field(default=0.0, description="reward of this step (0 for control tools)")
    done: bool = False
    truncated: bool = False
    turn: int = 0
    total_reward: float = 0.0
    valid_actions: list[str] | None = None
    info: dict[str, Any] = Field(default_factory=dict)
    closed: bool = False


def tool_input_schema(tool: ToolSpec) -> dict[str, Any]:
    return {**tool.json_schema()["function"]["parameters"], "additionalProperties": False}


START_INPUT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "task_id": {"type": "string", "maxLength": 500, "description": "a task id (see /v1/tasks)"},
        "seed": {"type": "integer", "minimum": 0, "description": "without task_id: picks a task within the split"},
        "split": {"type": "string", "enum": [s.value for s in Split], "description": "the split the seed picks from"},
    },
    "additionalProperties": False,
}
EMPTY_INPUT_SCHEMA: dict[str, Any] = {"type": "object", "properties": {}, "additionalProperties": False}
OUTPUT_SCHEMA: dict[str, Any] = EpisodeContent.model_json_schema()
