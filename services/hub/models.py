"""SQLAlchemy tables of the hub registry (own declarative base, tables prefixed `hub_`)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    DateTime,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


def utcnow() -> datetime:
    return datetime.now(UTC)


class HubBase(DeclarativeBase):
    """Declarative base of the hub only: the collector's tables live in the same database under their own base."""


class EnvRow(HubBase):
    __tablename__ = "hub_envs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True, index=True)
    env_name: Mapped[str] = mapped_column(String(200), doc="the name the env reports in /v1/info")
    version: Mapped[str] = mapped_column(String(100))
    description: Mapped[str] = mapped_column(Text, default="")
    info: Mapped[dict[str, Any]] = mapped_column(JSON)
    meta: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)
    replicas: Mapped[list[ReplicaRow]] = relationship(back_populates="env", cascade="all, delete-orphan",
                                                        order_by="ReplicaRow.id", lazy="selectin")


class ReplicaRow(HubBase):
    __tablename__ = "hub_replicas"
    __table_args__ = (UniqueConstraint("env_id", "url", name="uq_hub_replicas_env_url"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    env_id: Mapped[int] = mapped_column(ForeignKey("hub_envs.id", ondelete="CASCADE"), index=True)
    url: Mapped[str] = mapped_column(String(2000))
    status: Mapped[str] = mapped_column(String(16), default="unknown")
    verified: Mapped[bool] = mapped_column(default=False, doc="its /v1/info matched the env's name and version")
    sessions: Mapped[int | None] = mapped_column(Integer, nullable=True)
    max_sessions: Mapped[int | None] = mapped_column(Integer, nullable=True)
    failures: Mapped[int] = mapped_column(Integer, default=0, doc="consecutive failed health checks")
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    last_checked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    last_up_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    env: Mapped[EnvRow] = relationship(back_populates="replicas")
