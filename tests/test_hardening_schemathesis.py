"""Schemathesis fuzzing of every service's OpenAPI schema against real uvicorn servers.

The four env services (built-in data), the hub (SQLite store, one registered env) and the
dashboard's JSON API (a seeded trajectory store) are started with `running_server`; schemathesis generates valid and invalid requests for every
operation of each schema (bounded examples) and checks: no 5xx, the status code is one the
schema documents, the content type and body conform to the documented response schema.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.generation import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from envs.registry import load_class
from services.app import ServiceSettings, create_app
from services.dashboard import create_dashboard_router
from services.hub.app import HubSettings, create_hub_app
from store.repo import Store
from tests.support.dashboard_seed import RunSpec, seed_run, tasks_for
from tests.support.server import running_server

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
EXAMPLES = 60
TOKEN = "fuzz-token"
DEEP_EXAMPLES = 300  # the @slow variant


def _settings(examples: int) -> settings:
    return settings(max_examples=examples, deadline=None, derandomize=examples == EXAMPLES,
                    suppress_health_check=list(HealthCheck))


def _env_schema(name: str) -> Iterator[tuple[schemathesis.schemas.BaseSchema, str]]:
    app = create_app(load_class(name), settings=ServiceSettings(max_sessions=2000))
    with running_server(app) as url:
        yield schemathesis.openapi.from_url(url + "/openapi.json"), url


@pytest.fixture(scope="module")
def webshop_schema() -> Iterator[tuple[schemathesis.schemas.BaseSchema, str]]:
    yield from _env_schema("webshop")


@pytest.fixture(scope="module")
def household_schema() -> Iterator[tuple[schemathesis.schemas.BaseSchema, str]]:
    yield from _env_schema("household")


@pytest.fixture(scope="module")
def sql_schema() -> Iterator[tuple[schemathesis.schemas.BaseSchema, str]]:
    yield from _env_schema("sql")


@pytest.fixture(scope="module")
def qa_schema() -> Iterator[tuple[schemathesis.schemas.BaseSchema, str]]:
    yield from _env_schema("qa")


@pytest.fixture(scope="module")
def hub_schema(tmp_path_factory: pytest.TempPathFactory) -> Iterator[schemathesis.schemas.BaseSchema]:
    db = tmp_path_factory.mktemp("hub") / "hub.db"
    hub = create_hub_app(f"sqlite:///{db}", TOKEN, health_checks=False,
                         settings=HubSettings(info_timeout=0.5, health_timeout=0.5))
    replica = create_app(load_class("qa"))
    with running_server(replica) as replica_url, running_server(hub) as hub_url:
        r = httpx.post(hub_url + "/v1/envs", json={"urls": [replica_url], "name": "qa"},
                       headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10)
        assert r.status_code == 201, r.text
        yield schemathesis.openapi.from_url(hub_url + "/openapi.json")


@pytest.fixture(scope="module")
def dashboard_schema(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[schemathesis.schemas.BaseSchema, dict[str, int]]]:
    """The dashboard's JSON API (tag `dashboard`) over a store with a finished and a live run."""
    db = tmp_path_factory.mktemp("dashboard") / "store.db"
    store = Store(str(db))
    run_id = seed_run(store, RunSpec("done", "webshop", "model-a", tasks_for("webshop", 12), samples=2, seed=1))
    seed_run(store, RunSpec("live", "household", "model-b", tasks_for("household", 10), finish=4, claim_more=2, seed=2))
    ids = {"run_id": run_id, "episode_id": store.episodes(run_id)[0]["id"]}
    store.close()
    url = f"sqlite:///{db}"
    app = create_hub_app(url, TOKEN, health_checks=False, extra_routers=[create_dashboard_router(url)])
    with running_server(app) as base:
        yield schemathesis.openapi.from_url(base + "/openapi.json").include(tag="dashboard"), ids


def fuzz(schema: schemathesis.schemas.BaseSchema, headers: dict[str, str] | None = None, base_url: str | None = None,
         examples: int = EXAMPLES, env_name: str | None = None, path_values: dict[str, object] | None = None) -> int:
    """Run every operation with positive and negative cases; fail listing every operation that broke a check."""
    failures: list[str] = []
    operations = 0
    calls = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        operations += 1
        strategies = [operation.as_strategy(GenerationMode.POSITIVE)]
        with contextlib.suppress(Exception):  # operations without parameters have no negative cases
            strategies.append(operation.as_strategy(GenerationMode.NEGATIVE))
        if "{session_id}" in operation.path and base_url is not None:
            # Random ids only reach the 404 branch: also fuzz the bodies against a live session.
            live = httpx.post(base_url + "/v1/sessions", json={"seed": operations}, timeout=30).json()["session_id"]
            strategies.append(operation.as_strategy(GenerationMode.POSITIVE, path_parameters={"session_id": live}))
            with contextlib.suppress(Exception):
                strategies.append(operation.as_strategy(GenerationMode.NEGATIVE, path_parameters={"session_id": live}))
        if "{name}" in operation.path and env_name is not None:  # the hub: also a registered env's name
            strategies.append(operation.as_strategy(GenerationMode.POSITIVE, path_parameters={"name": env_name}))
        known = {k: v for k, v in (path_values or {}).items() if "{" + k + "}" in operation.path}
        if known:  # ids that exist (random ones only reach the 404 branch)
            strategies.append(operation.as_strategy(GenerationMode.POSITIVE, path_parameters=known))
            with contextlib.suppress(Exception):
                strategies.append(operation.as_strategy(GenerationMode.NEGATIVE, path_parameters=known))

        @_settings(examples)
        @given(case=st.one_of(strategies))
        def run(case: schemathesis.Case) -> None:
            nonlocal calls
            calls += 1
            case.call_and_validate(checks=CHECKS, headers=headers)

        try:
            run()
        except (Exception, BaseExceptionGroup) as err:  # collect all operations' failures, then fail once
            failures.append(f"{operation.label}: {type(err).__name__}: {str(err)[:1500]}")
    assert operations > 0 and calls >= operations
    assert not failures, "\n\n".join(failures)
    print(f"{schema.title}: {operations} operations, {calls} requests")  # figure for RELIABILITY.md (pytest -s)
    return calls


def test_webshop_api_fuzz(webshop_schema: tuple[schemathesis.schemas.BaseSchema, str]) -> None:
    fuzz(webshop_schema[0], base_url=webshop_schema[1])


def test_household_api_fuzz(household_schema: tuple[schemathesis.schemas.BaseSchema, str]) -> None:
    fuzz(household_schema[0], base_url=household_schema[1])


def test_sql_api_fuzz(sql_schema: tuple[schemathesis.schemas.BaseSchema, str]) -> None:
    fuzz(sql_schema[0], base_url=sql_schema[1])


def test_qa_api_fuzz(qa_schema: tuple[schemathesis.schemas.BaseSchema, str]) -> None:
    fuzz(qa_schema[0], base_url=qa_schema[1])


def test_hub_api_fuzz(hub_schema: schemathesis.schemas.BaseSchema) -> None:
    fuzz(hub_schema, headers={"Authorization": f"Bearer {TOKEN}"}, env_name="qa")


def test_dashboard_api_fuzz(dashboard_schema: tuple[schemathesis.schemas.BaseSchema, dict[str, int]]) -> None:
    """Includes out-of-range ids and pages (the schema states the bounds, schemathesis crosses them): 422, never 500."""
    schema, ids = dashboard_schema
    fuzz(schema, path_values=ids)


@pytest.mark.slow
def test_all_env_services_deep_fuzz(webshop_schema: tuple[schemathesis.schemas.BaseSchema, str],
                                    household_schema: tuple[schemathesis.schemas.BaseSchema, str],
                                    sql_schema: tuple[schemathesis.schemas.BaseSchema, str],
                                    qa_schema: tuple[schemathesis.schemas.BaseSchema, str]) -> None:
    """Random (not derandomized) and 300 examples per strategy: minutes, so marked slow."""
    for schema, url in (webshop_schema, household_schema, sql_schema, qa_schema):
        fuzz(schema, base_url=url, examples=DEEP_EXAMPLES)
