"""The session channel's wire format: many sessions' v1 operations over one WebSocket, `/v1/channel`.

A persistent connection costs a fraction of a request per step: no request line, headers, routing
or connection bookkeeping per step, and replies to many sessions travel in one frame. Every
operation means what its v1 route means, on the same session table (a session opened on a channel
is a v1 session: `/v1/sessions/{id}` sees it, the expert route serves it, it outlives the channel
and is reaped by the same idle TTL).

Frames are JSON text. The server's first frame is a `ChannelHello` (an object): the limits of this
channel. Then, client → server: an array of `ChannelRequest`s, at most
`MAX_FRAME_REQUESTS`, the frame at most `max_frame_bytes` (the service's body limit). Server → client: an array of
`ChannelReply`s, in completion order (match them by `id`; a session's own operations complete in
the order sent). A reply's `status` and `detail` are exactly those of the v1 route (200/201, 404,
409, 422, 429 with `retry_after`, 500 for an env bug); `id` is null only for a frame that could not
be read at all (status 400 or 413).

The connection's handshake carries the `X-Trajgym-Client` header like any v1 request: sessions it
opens count against that client's quota.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from envs.types import Split, ToolCall
from wire.env_api import MAX_ACTION_CHARS
from wire.surfaces import CHANNEL_PATH

__all__ = ["CHANNEL_PATH", "MAX_FRAME_REQUESTS", "ChannelHello", "ChannelReply", "ChannelRequest", "CreateRequest",
           "SessionOpRequest", "StepOpRequest"]

MAX_FRAME_REQUESTS = 1024
MAX_REQUEST_ID = 2**53


# The operations, each with the v1 route it is:
#   create   POST /v1/sessions               (task_id | seed, split) → SessionCreated, 201
#   step     POST /v1/sessions/{id}/step     (session_id, action)    → StepResponse
#   state    GET /v1/sessions/{id}           (session_id)            → SessionState
#   actions  GET /v1/sessions/{id}/actions   (session_id)            → ValidActions
#   expert   GET /v1/sessions/{id}/expert    (session_id)            → ExpertAction
#   close    DELETE /v1/sessions/{id}        (session_id)            → Closed
# One model per shape, told apart by `op` (a discriminated union, validated by pydantic-core alone).
SessionId = Annotated[str, Field(min_length=1, max_length=200)]


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: int = Field(ge=0, lt=MAX_REQUEST_ID, description="the client's number for this request; echoed in the reply")


class CreateRequest(_Request):
    op: Literal["create"]
    task_id: str | None = Field(default=None, max_length=500)
    seed: int | None = Field(default=None, ge=0, le=2**63 - 1)
    split: Split | None = None
    session_id: None = None  # (none yet: it names the session in its reply)


class StepOpRequest(_Request):
    op: Literal["step"]
    session_id: SessionId
    action: Annotated[str, Field(max_length=MAX_ACTION_CHARS)] | ToolCall = Field(description="ReAct text or a tool call")


class SessionOpRequest(_Request):
    op: Literal["state", "actions", "expert", "close"]
    session_id: SessionId


ChannelRequest = Annotated[CreateRequest | StepOpRequest | SessionOpRequest, Field(discriminator="op")]


class ChannelHello(BaseModel):
    """The server's first frame on a new channel: what it will take."""

    channel: str = "trajgym"
    version: int = 1
    max_frame_bytes: int = Field(description="the largest frame the server reads (its body limit); a bigger one is refused, 413")
    max_frame_requests: int = MAX_FRAME_REQUESTS
    in_flight_limit: int = Field(description="requests accepted and unanswered before the server stops reading")
    idle_timeout: float = Field(description="seconds without a frame, nothing in flight, before the server closes the channel")


class ChannelReply(BaseModel):
    """One reply; `result` is the v1 route's body on success, `detail` its error text otherwise."""

    id: int | None
    status: int
    result: Any = None
    detail: str | None = None
    retry_after: int | None = None
