"""Trajectory store: SQLAlchemy models, engine setup, Alembic migrations, claims and commits."""

from collector.store.records import ClaimedEpisode, EpisodeRecord, TurnRecord
from collector.store.repo import ConfigMismatch, RunExists, RunNotFound, Store, worker_id
from collector.store.threaded import AsyncStore

__all__ = ["AsyncStore", "ClaimedEpisode", "ConfigMismatch", "EpisodeRecord", "RunExists", "RunNotFound", "Store",
           "TurnRecord", "worker_id"]
