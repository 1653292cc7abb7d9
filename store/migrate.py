"""Apply the store's Alembic migrations programmatically (at every store open).

The migration scripts live in `store/migrations` and ship as package data
(.py files). On PostgreSQL an advisory lock serialises concurrent upgrades from
several collector processes; on SQLite the `BEGIN IMMEDIATE` of the engine does.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, text

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
_PG_LOCK_KEY = 7_406_311_007  # arbitrary, constant: "trajgym store migrations"


def alembic_config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return cfg


def upgrade(engine: Engine, revision: str = "head") -> None:
    cfg = alembic_config()
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_LOCK_KEY})
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)
