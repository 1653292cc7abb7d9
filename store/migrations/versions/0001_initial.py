"""Initial store schema: runs, episodes, turns.

Revision ID: 0001_initial
Revises:
Create Date: 2026-11-22
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001_initial"
down_revision = None
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "runs",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("config", sa.JSON(), nullable=False),
        sa.Column("config_hash", sa.String(64), nullable=False),
        sa.Column("env", sa.String(200), nullable=False),
        sa.Column("model", sa.String(500), nullable=True),
        sa.Column("policy", sa.String(20), nullable=False),
        sa.Column("prompt_format", sa.String(20), nullable=False),
        sa.Column("total_episodes", sa.Integer(), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.UniqueConstraint("name", name="uq_runs_name"),
    )
    op.create_table(
        "episodes",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("run_id", BigId, sa.ForeignKey("runs.id", ondelete="CASCADE"), nullable=False),
        sa.Column("env", sa.String(200), nullable=False),
        sa.Column("split", sa.String(20), nullable=False),
        sa.Column("task_id", sa.String(500), nullable=False),
        sa.Column("sample", sa.Integer(), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("claims", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("outcome", sa.String(20), nullable=True),
        sa.Column("reward", sa.Float(), nullable=True),
        sa.Column("success", sa.Boolean(), nullable=True),
        sa.Column("progress", sa.Float(), nullable=True),
        sa.Column("turns", sa.Integer(), nullable=True),
        sa.Column("prompt_tokens", sa.Integer(), nullable=True),
        sa.Column("completion_tokens", sa.Integer(), nullable=True),
        sa.Column("model", sa.String(500), nullable=True),
        sa.Column("worker", sa.String(200), nullable=True),
        sa.Column("lease_until", TS, nullable=True),
        sa.Column("claimed_at", TS, nullable=True),
        sa.Column("started_at", TS, nullable=True),
        sa.Column("finished_at", TS, nullable=True),
        sa.Column("duration_s", sa.Float(), nullable=True),
        sa.Column("model_time_s", sa.Float(), nullable=True),
        sa.Column("env_time_s", sa.Float(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.UniqueConstraint("run_id", "task_id", "sample", name="uq_episodes_run_task_sample"),
    )
    op.create_index("ix_episodes_run_status", "episodes", ["run_id", "status"])
    op.create_table(
        "turns",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("episode_id", BigId, sa.ForeignKey("episodes.id", ondelete="CASCADE"), nullable=False),
        sa.Column("idx", sa.Integer(), nullable=False),
        sa.Column("step", sa.Integer(), nullable=False),
        sa.Column("role", sa.String(20), nullable=False),
        sa.Column("content", sa.Text(), nullable=True),
        sa.Column("tool_calls", sa.JSON(), nullable=True),
        sa.Column("tool_call_id", sa.String(200), nullable=True),
        sa.Column("action", sa.Text(), nullable=True),
        sa.Column("observation", sa.Text(), nullable=True),
        sa.Column("reward", sa.Float(), nullable=True),
        sa.Column("done", sa.Boolean(), nullable=True),
        sa.Column("prompt_tokens", sa.Integer(), nullable=True),
        sa.Column("completion_tokens", sa.Integer(), nullable=True),
        sa.Column("finish_reason", sa.String(40), nullable=True),
        sa.Column("token_ids", sa.JSON(), nullable=True),
        sa.Column("prompt_token_ids", sa.JSON(), nullable=True),
        sa.Column("logprobs", sa.JSON(), nullable=True),
        sa.Column("latency_ms", sa.Float(), nullable=True),
        sa.UniqueConstraint("episode_id", "idx", name="uq_turns_episode_idx"),
    )


def downgrade() -> None:
    op.drop_table("turns")
    op.drop_index("ix_episodes_run_status", table_name="episodes")
    op.drop_table("episodes")
    op.drop_table("runs")
