"""docker/compose.yaml validated offline by docker/check_compose.py; broken variants are caught."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DOCKER = REPO / "docker"
COMPOSE = (DOCKER / "compose.yaml").read_text()


def _load_checker():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("check_compose", DOCKER / "check_compose.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


checker = _load_checker()


def check_text(tmp_path: Path, text: str, **kw: Path) -> list[str]:
    path = tmp_path / "compose.yaml"
    path.write_text(text)
    return checker.check(path, **kw)


def test_the_compose_file_is_consistent() -> None:
    assert checker.check() == []


def test_the_script_exits_0_and_prints_ok() -> None:
    out = subprocess.run([sys.executable, str(DOCKER / "check_compose.py")], capture_output=True, text=True, cwd=REPO,
                         timeout=120, check=False)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "compose check: OK" in out.stdout


@pytest.mark.parametrize(("old", "new", "expected"), [
    ('"trajgym", "serve", "webshop", "--host"', '"trajgym", "serve", "webshop", "--hots"', "No such option"),
    ('"trajgym", "hub", "--host"', '"trajgym", "hubb", "--host"', "not a trajgym command"),
    ('"--max-sessions", "${TRAJGYM_MAX_SESSIONS:-4096}"', '"--max-sessions", "${TRAJGYM_MAX_SESSIONS:-many}"', "valid integer"),
    ('"trajgym", "serve", "sql"', '"trajgym", "serve", "sqll"', "not a registered env"),
    ('"http://127.0.0.1:8003/readyz"', '"http://127.0.0.1:8013/readyz"', "healthcheck does not probe"),
    ('["${QA_PORT:-8004}:8004"]', '["${QA_PORT:-8004}:8014"]', "listens on 8004 but publishes"),
    ('"--register", "http://hub:8080", "--public-url", "http://sql:8003"',
     '"--register", "http://hub:9090", "--public-url", "http://sql:8003"', "the hub listens on 8080"),
    ('"--public-url", "http://qa:8004"', '"--public-url", "http://qa:8005"', "--public-url http://qa:8005"),
    ('"${TRAJGYM_LOG_LEVEL:-warning}"]\n    environment:', '"${TRAJGYM_UNDOCUMENTED:-warning}"]\n    environment:',
     "TRAJGYM_UNDOCUMENTED} is not documented"),
    ('profiles: ["gpu"]', 'profiles: ["cuda"]', "vllm: profiles"),
    ("vllm: {condition: service_healthy, required: false}", "vllm: {condition: service_healthy}", "without `required: false`"),
    ('"--model", "${COLLECT_MODEL_URL:-http://vllm:8000/v1}"', '"--model", "${COLLECT_MODEL_URL:-http://vllm:8001/v1}"',
     "is not a service port"),
    ('TRAJGYM_ENV_URL_SQL: http://sql:8003', 'TRAJGYM_ENV_URL_SQL: http://sql:8033', "env URL http://sql:8033"),
    ('"--store", "${TRAJGYM_STORE:-sqlite:////data/trajgym.db}", "--run-name"', '"--store", "sqlite:////tmp/x.db", "--run-name"',
     "not on a mounted volume"),
    ('["${SQL_PORT:-8003}:8003"]', '["${QA_PORT:-8004}:8003"]', "host port 8004 is also published"),
    ('"0.0.0.0", "--port", "8080"', '"127.0.0.1", "--port", "8080"', "must bind 0.0.0.0"),
])
def test_broken_variants_are_reported(tmp_path: Path, old: str, new: str, expected: str) -> None:
    assert COMPOSE.count(old) >= 1, old
    errors = check_text(tmp_path, COMPOSE.replace(old, new, 1))
    assert any(expected in e for e in errors), errors


def test_a_missing_token_and_a_root_image_are_reported(tmp_path: Path) -> None:
    env = tmp_path / ".env"
    env.write_text((DOCKER / ".env.example").read_text().replace("TRAJGYM_HUB_TOKEN=change", "# TRAJGYM_HUB_TOKEN=change"))
    dockerfile = tmp_path / "Dockerfile"
    dockerfile.write_text((DOCKER / "Dockerfile").read_text().replace("USER trajgym", "USER root"))
    errors = checker.check(DOCKER / "compose.yaml", env_file=env, dockerfile=dockerfile)
    assert any("required variable TRAJGYM_HUB_TOKEN" in e for e in errors), errors
    assert any("non-root USER" in e for e in errors), errors
