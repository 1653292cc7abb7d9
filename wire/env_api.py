"""Request and response bodies of the env service's v1 API (the AgentGym routes' are in `wire.agentgym_api`)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field, model_validator

from envs.types import Split, StepResult, TaskSpec, ToolCall

MAX_ACTION_CHARS = 20_000
# Clients name themselves in this header; the env service's session quota counts per (peer address, id).
CLIENT_HEADER = "X-Trajgym-Client"
CLIENT_ID_PATTERN = r"^[A-Za-z0-9._:@+-]{1,100}$"


class ErrorBody(BaseModel):
    detail: str


class UnprocessableBody(BaseModel):
    """422: a message (malformed action) or FastAPI's list of request-validation errors."""

    detail: str | list[dict[str, Any]]


# Error statuses every API route may answer (documented in the OpenAPI schema): 400 unparsable
# JSON body, 413 body over the limit (BodyLimitMiddleware), 422 invalid body or action.
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    **{status: {"model": ErrorBody} for status in (400, 403, 404, 409, 413, 429)},
    422: {"model": UnprocessableBody},
}


class CreateSession(BaseModel):
    task_id: str | None = Field(default=None, max_length=500)
    seed: int | None = Field(default=None, ge=0, le=2**63 - 1)
    split: Split | None = None


class SessionCreated(BaseModel):
    session_id: str
    task_id: str
    instruction: str
    observation: str
    valid_actions: list[str] | None = None
    info: dict[str, Any] = Field(default_factory=dict)


class StepRequest(BaseModel):
    action: str | ToolCall = Field(description="ReAct text (`search[shoes]`) or a tool call {name, arguments}")

    @model_validator(mode="after")
    def _limit(self) -> "StepRequest":
        if isinstance(self.action, str) and len(self.action) > MAX_ACTION_CHARS:
            raise ValueError(f"action longer than {MAX_ACTION_CHARS} characters")
        return self


class StepResponse(StepResult):
    turn: int
    progress: float | None = None


class SessionState(BaseModel):
    session_id: str
    task_id: str | None
    instruction: str
    observation: str
    turns: int
    done: bool
    total_reward: float
    progress: float | None
    valid_actions: list[str] | None
    created_at: datetime
    last_used_at: datetime


class ValidActions(BaseModel):
    valid_actions: list[str] | None


class ExpertAction(BaseModel):
    action: str


class Closed(BaseModel):
    session_id: str
    closed: bool = True


class TaskList(BaseModel):
    total: int
    tasks: list[TaskSpec]


# The hub stores a replica's reported counts in INTEGER columns: a value past them is a bad /healthz, not a crash.
MAX_COUNT = 2**31 - 1


class Health(BaseModel):
    status: str = Field(max_length=200)
    sessions: int = Field(default=0, ge=0, le=MAX_COUNT)
    max_sessions: int = Field(default=0, ge=0, le=MAX_COUNT)
