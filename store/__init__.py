"""The trajectory store: SQLAlchemy models, engine setup (`store.connect`), Alembic migrations,
claims and commits (`store.repo`), and the scores read from it (`store.scoring`, `store.pass_at_k`).

Its own package because three parts use it: the collector writes runs, the hub keeps its
registry in the same database, and the dashboard reads it. Imports no other project package.
"""

from store.records import ClaimedEpisode, EpisodeRecord, TurnRecord
from store.repo import ConfigMismatch, RunExists, RunNotFound, Store, worker_id
from store.threaded import AsyncStore

__all__ = ["AsyncStore", "ClaimedEpisode", "ConfigMismatch", "EpisodeRecord", "RunExists", "RunNotFound", "Store",
           "TurnRecord", "worker_id"]
