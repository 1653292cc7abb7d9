"""A fresh, uniquely named schema on the local PostgreSQL server (127.0.0.1:5432, database `test`) for one
test, dropped afterwards; the test is skipped when psycopg is missing or the server is unreachable."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator

import pytest

PG = "postgresql://postgres@127.0.0.1:5432/test"


@contextlib.contextmanager
def fresh_schema_url(prefix: str) -> Iterator[str]:
    """Create schema `{prefix}_<12 hex>` and yield a SQLAlchemy URL whose search_path is that schema."""
    psycopg = pytest.importorskip("psycopg")
    try:
        conn = psycopg.connect(PG, connect_timeout=3, autocommit=True)
    except psycopg.OperationalError as err:
        pytest.skip(f"PostgreSQL at 127.0.0.1:5432 is unreachable: {err}")
    schema = f"{prefix}_{uuid.uuid4().hex[:12]}"
    conn.execute(f'CREATE SCHEMA "{schema}"')
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:5432/test?options=-csearch_path%3D{schema}"
    finally:
        conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
        conn.close()
