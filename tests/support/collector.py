"""Shared setup of the collector tests: the counter env's targets, the counter env service (module
scope) and the scripted OpenAI stub, each on a real uvicorn server on a free loopback port.

Test modules bind the fixtures as module attributes (`env_url = collector.env_url`) so pytest finds them."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from services.app import create_app
from tests.support.counter_env import CounterData, CounterEnv
from tests.support.openai_stub import StubControl, create_stub
from tests.support.server import running_server

TARGETS = {t.task_id: int(t.meta["target"]) for t in CounterData().tasks.values()}


@pytest.fixture(scope="module")
def env_url() -> Iterator[str]:
    with running_server(create_app(CounterEnv)) as url:
        yield url


@pytest.fixture
def stub() -> Iterator[tuple[str, StubControl]]:
    app, control = create_stub()
    with running_server(app) as url:
        yield url, control
