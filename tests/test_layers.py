"""The layers point one way: a test that parses every import of every project package.

envs ← wire ← clients ← {services, collector} ← cli, with `store` used by services and
the collector, and `conformance` above services. README's Architecture section states the
same order; `test_readme_states_the_order` keeps the two in step.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# package -> the project packages it may import (besides itself)
ALLOWED: dict[str, set[str]] = {
    "envs": set(),
    "wire": {"envs"},
    "clients": {"envs", "wire"},
    "store": set(),
    "services": {"envs", "wire", "clients", "store"},
    "collector": {"envs", "wire", "clients", "store"},
    "conformance": {"envs", "wire", "clients", "services"},
    "cli": {"envs", "wire", "clients", "store", "services", "collector", "conformance"},
}
PROJECT = set(ALLOWED) | {"tests", "bench"}  # no package may import the test or benchmark helpers


def imported_packages(source: str) -> set[tuple[str, int]]:
    """(top-level project package, line) of every absolute import in `source`, lazy ones included."""
    found: set[tuple[str, int]] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        for name in names:
            top = name.split(".")[0]
            if top in PROJECT:
                found.add((top, node.lineno))
    return found


def violations(package: str, path: str, source: str) -> list[str]:
    allowed = ALLOWED[package] | {package}
    return [f"{path}:{line}: {package} imports {top}" for top, line in sorted(imported_packages(source)) if top not in allowed]


def all_violations() -> list[str]:
    out: list[str] = []
    for package in ALLOWED:
        for file in sorted((REPO / package).rglob("*.py")):
            out += violations(package, str(file.relative_to(REPO)), file.read_text(encoding="utf-8"))
    return out


def test_every_package_exists() -> None:
    for package in ALLOWED:
        assert (REPO / package / "__init__.py").is_file(), package


def test_imports_point_down_only() -> None:
    found = all_violations()
    assert not found, "backwards imports:\n" + "\n".join(found)


@pytest.mark.parametrize(("package", "source"), [
    ("envs", "from services.app import create_app\n"),
    ("envs", "def f():\n    import collector.collect\n"),  # a lazy import counts too
    ("clients", "from services.sessions import SessionManager\n"),
    ("wire", "import clients.env_client\n"),
    ("store", "from collector.config import JobConfig\n"),
    ("services", "from collector.collect import Collector\n"),
    ("collector", "from services.hub.app import create_hub_app\n"),
    ("services", "from tests.support.dashboard_seed import seed\n"),
])
def test_self_check_catches_a_backwards_import(package: str, source: str) -> None:
    """The checker is not vacuous: each of these added to a package is reported."""
    assert violations(package, "added.py", source), source


def test_self_check_accepts_downward_and_foreign_imports() -> None:
    assert not violations("services", "x.py", "from envs.base import Env\nimport wire.errors\nimport sqlalchemy\nfrom . import x\n")


def test_readme_states_the_order() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert "envs ← wire ← clients ← services, collector ← cli" in readme
