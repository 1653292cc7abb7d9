"""Typed values that cross the env boundary: tasks, actions, observations, metadata.

These pydantic models are shared by the env protocol (`envs.base`), the HTTP
service (`services`), the clients and the collector, so every layer speaks the
same shapes.
"""

from __future__ import annotations

from enum import Enum
from typing import Any

from pydantic import BaseModel, Field


class Split(str, Enum):
    """Task splits, as in AgentGym / WebShop / ALFWorld."""

    train = "train"
    dev = "dev"
    test = "test"


class TaskSpec(BaseModel):
    """One task an env can be reset to. `task_id` is stable across restarts."""

    task_id: str
    split: Split
    instruction: str = ""
    meta: dict[str, Any] = Field(default_factory=dict)


class ToolCall(BaseModel):
    """A native function call: tool name + JSON arguments."""

    name: str = Field(min_length=1, max_length=200)
    arguments: dict[str, Any] = Field(default_factory=dict)


class Action(BaseModel):
    """An action after parsing: the tool it names, its arguments, and its canonical text."""

    name: str
    arguments: dict[str, str] = Field(default_factory=dict)
    text: str


class ActionFormat(str, Enum):
    text = "text"
    tool = "tool"


class ToolParam(BaseModel):
    name: str
    description: str = ""


class ToolSpec(BaseModel):
    """One verb of an env, usable as a ReAct text action and as a native tool call.

    `text_template` renders the canonical text form, e.g. ``search[{keywords}]`` or
    ``take {obj} from {recep}``; the same template is parsed back from text.
    """

    name: str
    description: str
    params: list[ToolParam] = Field(default_factory=list)
    text_template: str

    def json_schema(self) -> dict[str, Any]:
        """OpenAI `tools` entry for native function calling."""
        return {
            "type": "function",
            "function": {
                "name": self.name,
                "description": self.description,
                "parameters": {
                    "type": "object",
                    "properties": {
                        p.name: {"type": "string", "description": p.description} for p in self.params
                    },
                    "required": [p.name for p in self.params],
                },
            },
        }


class EnvInfo(BaseModel):
    """Env metadata served at `/v1/info`."""

    name: str
    version: str
    description: str
    action_formats: list[ActionFormat]
    tools: list[dict[str, Any]]
    text_actions: list[str]
    max_turns: int
    has_expert: bool
    has_progress: bool
    task_counts: dict[Split, int]
    system_prompt: str = ""
    modes: dict[str, str] = Field(default_factory=dict, description="named modes in force (axis -> value); the first choice of each axis is the published benchmark's")
    mode_choices: dict[str, list[str]] = Field(default_factory=dict)
    withheld_tasks: dict[str, int] = Field(default_factory=dict, description="tasks left out of the served splits, by reason")
    data_digest: str | None = Field(default=None, description="digest of the data the service loaded (tasks and the "
                                                              "env's own resources), computed once at load")


class Observation(BaseModel):
    """What the agent sees after reset."""

    task_id: str
    instruction: str
    observation: str
    valid_actions: list[str] | None = None
    info: dict[str, Any] = Field(default_factory=dict)


class StepResult(BaseModel):
    """What the agent sees after a step. `truncated` marks the env's turn limit."""

    observation: str
    reward: float = 0.0
    done: bool = False
    truncated: bool = False
    valid_actions: list[str] | None = None
    info: dict[str, Any] = Field(default_factory=dict)
