"""Honest scores: run provenance, per-episode sampling, per-turn env info, progress, flags and timings.

Revision ID: 0002_outcomes_provenance
Revises: 0001_initial
Create Date: 2026-11-29

Only nullable columns are added, so existing stores upgrade in place (SQLite ADD COLUMN);
rows written before it read NULL there. The new `env_error` outcome needs no schema change.
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002_outcomes_provenance"
down_revision = "0001_initial"
branch_labels = None
depends_on = None

_TURN_COLUMNS = (
    ("queue_ms", sa.Float()),
    ("seed", sa.BigInteger()),
    ("info", sa.JSON()),
    ("progress", sa.Float()),
    ("truncated", sa.Boolean()),
    ("invalid_action", sa.Boolean()),
    ("env_ms", sa.Float()),
)


def upgrade() -> None:
    op.add_column("runs", sa.Column("provenance", sa.JSON(), nullable=True))
    op.add_column("episodes", sa.Column("sampling", sa.JSON(), nullable=True))
    for name, type_ in _TURN_COLUMNS:
        op.add_column("turns", sa.Column(name, type_, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("turns") as batch:
        for name, _ in reversed(_TURN_COLUMNS):
            batch.drop_column(name)
    with op.batch_alter_table("episodes") as batch:
        batch.drop_column("sampling")
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("provenance")
