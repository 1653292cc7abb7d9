"""Plain values passed between the engine and the store (no ORM objects cross threads)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


@dataclass(slots=True)
class ClaimedEpisode:
    id: int
    task_id: str
    split: str
    sample: int
    attempt: int


@dataclass(slots=True)
class TurnRecord:
    step: int
    role: str
    content: str | None = None
    tool_calls: list[dict[str, Any]] | None = None
    tool_call_id: str | None = None
    action: str | None = None
    observation: str | None = None
    reward: float | None = None
    done: bool | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    finish_reason: str | None = None
    token_ids: list[int] | None = None
    prompt_token_ids: list[int] | None = None
    logprobs: list[float] | None = None
    latency_ms: float | None = None      # model call: request sent to answer read (expert: the expert call)
    queue_ms: float | None = None        # model call: waiting for a free model slot before it was sent
    seed: int | None = None              # model call: the seed sent
    info: dict[str, Any] | None = None   # observation: the env's info dict of that step (or of the reset)
    progress: float | None = None        # observation: the env's progress after that step
    truncated: bool | None = None        # observation: the env's turn limit ended the episode
    invalid_action: bool | None = None   # observation/feedback: the action was refused or matched no form
    env_ms: float | None = None          # observation: the env call's round trip (step, or session create)


@dataclass(slots=True)
class EpisodeRecord:
    """A finished episode, ready to commit with its turns in one transaction."""

    episode_id: int
    outcome: str
    attempt: int
    reward: float | None = None
    success: bool | None = None
    progress: float | None = None
    turns: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    model: str | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    duration_s: float | None = None
    model_time_s: float = 0.0
    env_time_s: float = 0.0
    error: str | None = None
    sampling: dict[str, Any] | None = None  # the sampling parameters sent (the seed is the first call's)
    messages: list[TurnRecord] = field(default_factory=list)
