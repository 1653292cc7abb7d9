"""Bodies of the OpenEnv surface: OpenEnv's env-server protocol, spoken by every trajgym env service.

OpenEnv (PyPI `openenv`) talks to an env server over a WebSocket session (`/ws`: messages
`reset`, `step`, `state`, `close`; answers `observation`, `state`, `error`) and offers HTTP
routes beside it (`/reset`, `/step`, `/state`, `/schema`, `/metadata`, `/health`, `/mcp`).
The shapes here are OpenEnv's: a step answer is `{"observation": {...}, "reward", "done",
"metadata"}`, an error is `{"type": "error", "data": {"message", "code"}}`.

What is trajgym's own is what an action and an observation hold, generated from the env's
`ToolSpec`s (`action_schema`): an action is ReAct text (`{"text": "search[shoes]"}`), a tool
call in OpenEnv's MCP-action shape (`{"type": "call_tool", "tool_name": "search",
"arguments": {"keywords": "shoes"}}`), or `{"type": "list_tools"}`.
"""

from __future__ import annotations

from enum import Enum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from envs.types import Split, ToolSpec
from wire.env_api import MAX_ACTION_CHARS
from wire.mcp_api import tool_input_schema

# OpenEnv's HTTP profile ("openenv-http/1.x"): its own servers declare OpenAPI version 1.0.0.
OPENENV_API_VERSION = "1.0.0"


class WSErrorCode(str, Enum):
    """OpenEnv's WebSocket error codes (the `code` of an error frame)."""

    INVALID_JSON = "INVALID_JSON"
    UNKNOWN_TYPE = "UNKNOWN_TYPE"
    VALIDATION_ERROR = "VALIDATION_ERROR"
    EXECUTION_ERROR = "EXECUTION_ERROR"
    CAPACITY_REACHED = "CAPACITY_REACHED"
    FACTORY_ERROR = "FACTORY_ERROR"
    SESSION_ERROR = "SESSION_ERROR"


# ----- actions ---------------------------------------------------------------------------
class OpenEnvAction(BaseModel):
    """One action: ReAct text, a call of one of the env's tools, or a request for the tool list."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["text", "call_tool", "list_tools"] = "text"
    text: str | None = Field(default=None, max_length=MAX_ACTION_CHARS, description="ReAct text action (type text)")
    tool_name: str | None = Field(default=None, min_length=1, max_length=200, description="tool to call (type call_tool)")
    arguments: dict[str, Any] = Field(default_factory=dict, description="the tool's arguments (type call_tool)")
    metadata: dict[str, Any] = Field(default_factory=dict, description="free-form, ignored by the env")

    @model_validator(mode="after")
    def _fits_type(self) -> OpenEnvAction:
        if self.type == "text" and self.text is None:
            raise ValueError('a text action needs "text" (or give "type": "call_tool" with "tool_name")')
        if self.type == "call_tool" and self.tool_name is None:
            raise ValueError('a call_tool action needs "tool_name"')
        if self.type != "text" and self.text is not None:
            raise ValueError(f'"text" belongs to text actions, not {self.type}')
        if self.type != "call_tool" and (self.tool_name is not None or self.arguments):
            raise ValueError(f'"tool_name" and "arguments" belong to call_tool actions, not {self.type}')
        return self


def action_schema(env_name: str, tools: list[ToolSpec], text_forms: list[str]) -> dict[str, Any]:
    """JSON Schema of the env's actions, one variant per tool (from its `ToolSpec`) plus text and list_tools."""
    metadata = {"type": "object", "description": "free-form, ignored by the env"}
    text_variant = {
        "title": "TextAction",
        "type": "object",
        "description": "A ReAct text action. Forms: " + "; ".join(text_forms),
        "properties": {"type": {"const": "text", "default": "text"},
                       "text": {"type": "string", "maxLength": MAX_ACTION_CHARS}, "metadata": metadata},
        "required": ["text"],
        "additionalProperties": False,
    }
    tool_variants = [
        {
            "title": f"CallTool[{t.name}]",
            "type": "object",
            "description": t.description,
            "properties": {"type": {"const": "call_tool"}, "tool_name": {"const": t.name},
                           "arguments": tool_input_schema(t), "metadata": metadata},
            "required": ["type", "tool_name", "arguments"],
            "additionalProperties": False,
        }
        for t in tools
    ]
    list_variant = {
        "title": "ListToolsAction",
        "type": "object",
        "description": "List the env's tools with their JSON schemas (uses no turn; works before reset).",
        "properties": {"type": {"const": "list_tools"}, "metadata": metadata},
        "required": ["type"],
        "additionalProperties": False,
    }
    return {"title": f"{env_name} action", "oneOf": [text_variant, *tool_variants, list_variant]}


class McpTool(BaseModel):
    """A tool as OpenEnv lists it (its `Tool`: name, description, input_schema)."""

    name: str
    description: str
    input_schema: dict[str, Any]


def openenv_tools(tools: list[ToolSpec]) -> list[McpTool]:
    return [McpTool(name=t.name, description=t.description, input_schema=tool_input_schema(t)) for t in tools]


# ----- observations and state -----------------------------------------------------------
class OpenEnvObservation(BaseModel):
    """What the agent sees (the `observation` of a reset or step answer; reward and done sit beside it).

    `tool_name` and `result` are set after a call_tool action (`result` repeats `text`), as
    OpenEnv's `CallToolObservation` has them; `tools` only answers a list_tools action."""

    text: str = Field(default="", description="the env's observation text")
    task_id: str | None = None
    instruction: str = ""
    valid_actions: list[str] | None = Field(default=None, description="admissible actions, where the env lists them")
    turn: int = 0
    truncated: bool = Field(default=False, description="the episode ended at the env's turn limit")
    metadata: dict[str, Any] = Field(default_factory=dict, description="the env's step info (success, progress, ...)")
    tool_name: str | None = None
    result: str | None = None
    tools: list[McpTool] | None = None

    def payload(self) -> dict[str, Any]:
        """The wire dict; the call_tool / list_tools fields only where set (OpenEnv's MCP client keys on them)."""
        data = self.model_dump(mode="json")
        for key in ("tool_name", "result", "tools"):
            if data[key] is None:
                del data[key]
        return data


class OpenEnvState(BaseModel):
    """The episode's state (OpenEnv's `State`: episode_id, step_count, and the env's own fields)."""

    episode_id: str | None = Field(default=None, description="the trajgym session id (also usable on /v1/sessions/{id})")
    step_count: int = 0
    task_id: str | None = None
    instruction: str = ""
    done: bool = False
    total_reward: float = 0.0
    progress: float | None = None
    client_episode_id: str | None = Field(default=None, description="the episode_id the client gave at reset, if any")


class OpenEnvResult(BaseModel):
    """A reset or step answer: `{"observation": {...}, "reward", "done", "metadata"}`."""

    observation: dict[str, Any]
    reward: float | None = None
    done: bool = False
    metadata: dict[str, Any] | None = None


# ----- requests ----------------------------------------------------------------------------
class OpenEnvReset(BaseModel):
    """Reset parameters (the `data` of a `reset` message, or the HTTP `/reset` body)."""

    model_config = ConfigDict(extra="forbid")

    task_id: str | None = Field(default=None, max_length=500)
    seed: int | None = Field(default=None, ge=0, le=2**63 - 1, description="picks a task within the split")
    split: Split | None = None
    episode_id: str | None = Field(default=None, max_length=255, description="the client's own name for the episode")


class OpenEnvStepRequest(BaseModel):
    """HTTP `/step` body: OpenEnv's fields, plus `session_id` (HTTP steps need a session to act on)."""

    model_config = ConfigDict(extra="forbid")

    action: dict[str, Any]
    timeout_s: float | None = Field(default=None, gt=0)
    request_id: str | None = Field(default=None, max_length=255)
    session_id: str | None = Field(default=None, max_length=100, description="a session opened over /ws or /v1")


class WSMessage(BaseModel):
    """One client frame on `/ws`."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["reset", "step", "state", "close", "mcp"]
    data: dict[str, Any] = Field(default_factory=dict)


class WSResponse(BaseModel):
    type: Literal["observation", "state", "error", "mcp"]
    data: dict[str, Any]


def ws_error(message: str, code: WSErrorCode, **extra: Any) -> WSResponse:
    return WSResponse(type="error", data={"message": message, "code": code.value, **extra})


# ----- info routes --------------------------------------------------------------------------
class OpenEnvMetadata(BaseModel):
    name: str
    description: str
    readme_content: str | None = None
    version: str | None = None
    author: str | None = None
    documentation_url: str | None = None


class OpenEnvHealth(BaseModel):
    status: Literal["healthy", "unhealthy", "degraded"] = "healthy"


class OpenEnvSchemas(BaseModel):
    action: dict[str, Any]
    observation: dict[str, Any]
    state: dict[str, Any]
    reset_observation: dict[str, Any]


class JsonRpcResponse(BaseModel):
    """A JSON-RPC 2.0 answer of the `/mcp` route (OpenEnv's plain JSON-RPC, not MCP streamable HTTP)."""

    jsonrpc: Literal["2.0"] = "2.0"
    id: int | str | None = None
    result: Any = None
    error: dict[str, Any] | None = None
