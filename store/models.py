"""SQLAlchemy 2 models of the trajectory store: runs, episodes, turns.

An episode row exists from the moment a run is created (status `pending`); it is
claimed by a worker (`claimed`, with a lease) and written once with its turns when
it ends (`done`, with a typed `outcome`). Unique (run, task_id, sample) guarantees
that no task × sample is ever stored twice.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# BIGINT primary keys on PostgreSQL, INTEGER (rowid alias) on SQLite.
BigId = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    pass


class Run(Base):
    __tablename__ = "runs"
    __table_args__ = (UniqueConstraint("name", name="uq_runs_name"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(200))
    config: Mapped[dict[str, Any]] = mapped_column(JSON)
    config_hash: Mapped[str] = mapped_column(String(64))
    env: Mapped[str] = mapped_column(String(200))
    model: Mapped[str | None] = mapped_column(String(500))
    policy: Mapped[str] = mapped_column(String(20))
    prompt_format: Mapped[str] = mapped_column(String(20))
    total_episodes: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # what the run's data depends on beyond its config: versions, env data digest, model, prompts, tools
    provenance: Mapped[dict[str, Any] | None] = mapped_column(JSON)


class Episode(Base):
    __tablename__ = "episodes"
    __table_args__ = (
        UniqueConstraint("run_id", "task_id", "sample", name="uq_episodes_run_task_sample"),
        Index("ix_episodes_run_status", "run_id", "status"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    env: Mapped[str] = mapped_column(String(200))
    split: Mapped[str] = mapped_column(String(20))
    task_id: Mapped[str] = mapped_column(String(500))
    sample: Mapped[int] = mapped_column(Integer)
    attempt: Mapped[int] = mapped_column(Integer, default=0)
    claims: Mapped[int] = mapped_column(Integer, default=0)
    status: Mapped[str] = mapped_column(String(20), default="pending")
    outcome: Mapped[str | None] = mapped_column(String(20))
    reward: Mapped[float | None] = mapped_column(Float)
    success: Mapped[bool | None] = mapped_column(Boolean)
    progress: Mapped[float | None] = mapped_column(Float)
    turns: Mapped[int | None] = mapped_column(Integer)
    prompt_tokens: Mapped[int | None] = mapped_column(Integer)
    completion_tokens: Mapped[int | None] = mapped_column(Integer)
    model: Mapped[str | None] = mapped_column(String(500))
    worker: Mapped[str | None] = mapped_column(String(200))
    lease_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    claimed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    duration_s: Mapped[float | None] = mapped_column(Float)
    model_time_s: Mapped[float | None] = mapped_column(Float)
    env_time_s: Mapped[float | None] = mapped_column(Float)
    error: Mapped[str | None] = mapped_column(Text)
    sampling: Mapped[dict[str, Any] | None] = mapped_column(JSON)


class Turn(Base):
    """One message of an episode: system, user (instruction/observation), assistant, or tool."""

    __tablename__ = "turns"
    __table_args__ = (UniqueConstraint("episode_id", "idx", name="uq_turns_episode_idx"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    episode_id: Mapped[int] = mapped_column(ForeignKey("episodes.id", ondelete="CASCADE"))
    idx: Mapped[int] = mapped_column(Integer)
    step: Mapped[int] = mapped_column(Integer)
    role: Mapped[str] = mapped_column(String(20))
    content: Mapped[str | None] = mapped_column(Text)
    tool_calls: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON)
    tool_call_id: Mapped[str | None] = mapped_column(String(200))
    action: Mapped[str | None] = mapped_column(Text)
    observation: Mapped[str | None] = mapped_column(Text)
    reward: Mapped[float | None] = mapped_column(Float)
    done: Mapped[bool | None] = mapped_column(Boolean)
    prompt_tokens: Mapped[int | None] = mapped_column(Integer)
    completion_tokens: Mapped[int | None] = mapped_column(Integer)
    finish_reason: Mapped[str | None] = mapped_column(String(40))
    token_ids: Mapped[list[int] | None] = mapped_column(JSON)
    prompt_token_ids: Mapped[list[int] | None] = mapped_column(JSON)
    logprobs: Mapped[list[float] | None] = mapped_column(JSON)
    latency_ms: Mapped[float | None] = mapped_column(Float)
    queue_ms: Mapped[float | None] = mapped_column(Float)
    seed: Mapped[int | None] = mapped_column(BigInteger)
    info: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    progress: Mapped[float | None] = mapped_column(Float)
    truncated: Mapped[bool | None] = mapped_column(Boolean)
    invalid_action: Mapped[bool | None] = mapped_column(Boolean)
    env_ms: Mapped[float | None] = mapped_column(Float)
