"""Pydantic documents of the dashboard's JSON API (the pages render the same documents)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import Path, Query
from pydantic import BaseModel, Field

# Bounds of what a URL may ask for (422 past them, never a database overflow and a 500): ids are the store's
# BIGINT primary keys (SQLite INTEGER is 64-bit too); a page number must keep OFFSET (page-1)*per_page in int64.
MAX_ID = 2**63 - 1
MAX_PAGE = 2**31 - 1
MAX_PER_PAGE = 500

OUTCOMES = ("success", "failure", "truncated", "policy_error", "env_error", "infra_error")
Outcome = Literal["success", "failure", "truncated", "policy_error", "env_error", "infra_error"]
RunState = Literal["complete", "running", "idle"]


# Route parameters of the API and the pages, one definition each.
RunId = Annotated[int, Path(ge=1, le=MAX_ID, description="a run's id")]
EpisodeId = Annotated[int, Path(ge=1, le=MAX_ID, description="an episode's id")]
PerPage = Annotated[int, Query(ge=1, le=MAX_PER_PAGE)]


class Page(BaseModel):
    page: int
    per_page: int
    total: int
    pages: int


class RunSummary(BaseModel):
    id: int
    name: str
    model: str | None
    policy: str
    prompt_format: str
    env: str
    modes: dict[str, str] = Field(default_factory=dict, description="env modes the run was collected under "
                                                                   "(grading=legacy: stored before modes were recorded)")
    splits: list[str]
    created_at: datetime
    total_episodes: int
    done: int
    pending: int
    claimed: int
    scored: int = Field(description="done episodes that are not infra errors (the denominators; env errors "
                                    "included, as not solved)")
    successes: int
    success_rate: float | None
    mean_reward: float | None
    mean_turns: float | None
    outcomes: dict[str, int]
    env_errors: int = Field(default=0, description="the env service failed on its own: counted as not solved")
    infra_errors: int
    prompt_tokens: int
    completion_tokens: int
    started_at: datetime | None
    finished_at: datetime | None
    wall_s: float | None = Field(description="first episode start to last episode end")
    episode_time_s: float = Field(description="sum of episode durations")
    state: RunState = Field(description="complete: nothing left; running: live claims; idle: work left, no live claim")


class RunList(BaseModel):
    page: Page
    runs: list[RunSummary]


class ModelEnvScore(BaseModel):
    model: str
    modes: str = Field(default="", description="env modes of the runs pooled here (all the same: runs under "
                                                "different modes are separate rows)")
    env: str
    runs: int
    scored: int
    successes: int
    success_rate: float | None
    mean_reward: float | None
    mean_progress: float | None
    infra_errors: int


class ProgressCurve(BaseModel):
    model: str
    env: str = Field(description="an env name, or '(all envs)': the mean of the model's per-env curves")
    episodes: int
    progress: list[float] = Field(description="index t: mean progress rate of the episodes cut at turn t")
    success: list[float] = Field(description="index t: fraction of the episodes solved within t turns")


class Comparison(BaseModel):
    split: str | None
    models: list[str]
    envs: list[str]
    splits: list[str]
    scores: list[ModelEnvScore]
    curves: list[ProgressCurve]
    curve_note: str


class Bin(BaseModel):
    lo: float
    hi: float
    count: int


class RunDetail(BaseModel):
    run: RunSummary
    config: dict[str, Any]
    scores: list[dict[str, Any]] = Field(description="store.scoring.score_run rows (per env and split)")
    reward_histogram: list[Bin]
    turns_histogram: dict[int, int]
    outcome_counts: dict[str, int] = Field(description="outcomes of done episodes plus pending/claimed")


class TaskFilter(BaseModel):
    split: str | None = Field(default=None, max_length=20)
    outcome: Outcome | None = Field(default=None, description="tasks with at least one episode of this outcome")
    solved: Literal["yes", "no"] | None = Field(default=None, description="yes: some sample succeeded; no: none did")
    q: str | None = Field(default=None, max_length=200, description="substring of the task id")
    sort: Literal["task_id", "split", "episodes", "success_rate", "mean_reward", "mean_turns", "tokens"] = "task_id"
    order: Literal["asc", "desc"] = "asc"
    page: int = Field(default=1, ge=1, le=MAX_PAGE)
    per_page: int = Field(default=50, ge=1, le=MAX_PER_PAGE)


class TaskRow(BaseModel):
    task_id: str
    split: str
    episodes: int
    done: int
    scored: int
    successes: int
    success_rate: float | None
    mean_reward: float | None
    mean_turns: float | None
    tokens: int
    outcomes: dict[str, int]
    first_episode: int = Field(description="id of the task's first done episode (or first episode) in the run")


class TaskTable(BaseModel):
    run_id: int
    filters: TaskFilter
    page: Page
    tasks: list[TaskRow]


class EpisodeRef(BaseModel):
    id: int
    run_id: int
    run_name: str
    model: str | None
    sample: int
    outcome: str | None


class EpisodeInfo(BaseModel):
    id: int
    run_id: int
    run_name: str
    env: str
    split: str
    task_id: str
    sample: int
    attempt: int
    status: str
    outcome: str | None
    reward: float | None
    success: bool | None
    progress: float | None
    turns: int | None
    prompt_tokens: int | None
    completion_tokens: int | None
    model: str | None
    worker: str | None
    started_at: datetime | None
    finished_at: datetime | None
    duration_s: float | None
    model_time_s: float | None
    env_time_s: float | None
    error: str | None


class Message(BaseModel):
    idx: int
    step: int
    role: str
    content: str | None
    thought: str | None = Field(description="assistant: the reasoning before the action ('Thought:' text)")
    tool_calls: list[dict[str, Any]] | None
    tool_call_id: str | None
    action: str | None
    observation: str | None
    reward: float | None
    done: bool | None
    prompt_tokens: int | None
    completion_tokens: int | None
    finish_reason: str | None
    latency_ms: float | None


class Step(BaseModel):
    """One turn: what the agent said (thought, action) and what the env answered."""

    step: int
    thought: str | None
    action: str | None
    observation: str | None
    reward: float | None
    done: bool | None
    prompt_tokens: int | None
    completion_tokens: int | None
    latency_ms: float | None
    messages: list[Message]


class EpisodeView(BaseModel):
    episode: EpisodeInfo
    steps: list[Step]
    task_episodes: int = Field(description="done episodes of this env and task across all runs")
    position: int | None = Field(description="1-based position of this episode among them")
    prev: EpisodeRef | None
    next: EpisodeRef | None


class RecentEpisode(BaseModel):
    id: int
    task_id: str
    split: str
    outcome: str | None
    reward: float | None
    turns: int | None
    duration_s: float | None
    finished_at: datetime | None


class LiveView(BaseModel):
    run: RunSummary
    now: datetime
    workers: dict[str, int] = Field(description="live claims (unexpired lease) per worker")
    finished_last_minute: int
    rate_per_min: float | None = Field(description="episodes finished per minute over the last 5 minutes")
    eta_s: float | None
    timeline: list[tuple[float, int]] = Field(description="(seconds since the first finish, cumulative finished)")
    recent: list[RecentEpisode]
