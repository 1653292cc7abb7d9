"""Shared fixtures: the counter test env served by a real uvicorn server on a free port."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from services.app import ServiceSettings, create_app
from tests.support.counter_env import CounterEnv
from tests.support.server import running_server

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture(scope="module")
def counter_url() -> Iterator[str]:
    with running_server(create_app(CounterEnv, settings=ServiceSettings(max_sessions=10_000))) as url:
        yield url
