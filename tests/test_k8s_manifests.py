"""docker/k8s/ validated offline by docker/check_k8s.py (Kubernetes schemas of kubernetes-validate, every
container command parsed by the real trajgym CLI); broken variants are caught."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
K8S = REPO / "docker" / "k8s"
pytest.importorskip("kubernetes_validate", reason="kubernetes-validate (test extra) is not installed")


def _load_checker():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("check_k8s", REPO / "docker" / "check_k8s.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


checker = _load_checker()


def _variant(tmp_path: Path, file: str, old: str, new: str) -> list[str]:
    folder = tmp_path / "k8s"
    shutil.copytree(K8S, folder)
    text = (folder / file).read_text()
    assert text.count(old) >= 1, (file, old)
    (folder / file).write_text(text.replace(old, new, 1))
    return checker.check(folder)


def test_the_manifests_are_consistent() -> None:
    assert checker.check() == []


def test_the_script_exits_0_and_prints_ok() -> None:
    out = subprocess.run([sys.executable, str(REPO / "docker" / "check_k8s.py")], capture_output=True, text=True, cwd=REPO,
                         timeout=120, check=False)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "k8s check: OK" in out.stdout


@pytest.mark.parametrize(("file", "old", "new", "expected"), [
    # Kubernetes schemas (strict)
    ("webshop.yaml", "replicas: 2", "replicas: two", "is not of type 'integer'"),
    ("hub.yaml", "imagePullPolicy: IfNotPresent", "imagePullPolicy: IfNotPresent\n          replicas: 2", "'replicas' was unexpected"),
    ("collect-job.yaml", "parallelism: 2", "paralelism: 2", "'paralelism' was unexpected"),
    # trajgym commands
    ("sql.yaml", '"--max-sessions", "4096"', '"--max-session", "4096"', "No such option"),
    ("qa.yaml", '"serve", "qa"', '"serve", "qaa"', "not a registered env"),
    ("hub.yaml", '"trajgym", "hub"', '"trajgym", "hubb"', "not a trajgym command"),
    ("collect-config.yaml", 'COLLECT_SAMPLES: "1"', 'COLLECT_SAMPLES: "one"', "valid integer"),
    ("collect-config.yaml", "COLLECT_ENV: webshop", "COLLECT_ENV: webshopp", "is not an env served here"),
    ("collect-job.yaml", '"--run-name", "$(COLLECT_RUN_NAME)"', '"--run-name", "$(COLLECT_RUN)"', "$(COLLECT_RUN) is not in the container's environment"),
    ("collect-job.yaml", '"--resume", "--quiet"', '"--quiet"', "without --resume"),
    ("collect-job.yaml", "restartPolicy: Never", "restartPolicy: Always", "restartPolicy"),
    # wiring
    ("household.yaml", '"--register", "http://trajgym-hub:8080"', '"--register", "http://trajgym-hub:9090"', "is not the hub Service"),
    ("webshop.yaml", '"--public-url", "http://$(POD_IP):8000"', '"--public-url", "http://trajgym-webshop:8000"', "is not http://$(POD_IP):8000"),
    ("qa.yaml", "fieldRef: {fieldPath: status.podIP}", "fieldRef: {fieldPath: status.hostIP}", "is not http://$(POD_IP):8000"),
    ("sql.yaml", "readinessProbe:\n            httpGet: {path: /readyz, port: 8000}",
     "readinessProbe:\n            httpGet: {path: /healthz, port: 8000}", "readinessProbe is not GET /readyz"),
    ("webshop.yaml", "containerPort: 8000", "containerPort: 8001", "listens on 8000 but declares"),
    ("hub.yaml", '"--host", "0.0.0.0", "--port", "8080"', '"--host", "127.0.0.1", "--port", "8080"', "must bind 0.0.0.0"),
    ("hub.yaml", "      targetPort: 8080", "      targetPort: 8081", "no port targets its port 8080"),
    ("hub.yaml", "secretKeyRef: {name: trajgym, key: store-url}", "secretKeyRef: {name: trajgym, key: store}", "the documented one is trajgym"),
    ("hub.yaml", "runAsNonRoot: true", "runAsNonRoot: false", "runAsNonRoot"),
    ("kustomization.yaml", "  - sql.yaml\n", "", "sql.yaml is not in resources"),
    ("kustomization.yaml", "  - qa.yaml\n", "  - qa.yaml\n  - collect-job.yaml\n", "applied on its own"),
])
def test_broken_variants_are_reported(tmp_path: Path, file: str, old: str, new: str, expected: str) -> None:
    errors = _variant(tmp_path, file, old, new)
    assert any(expected in e for e in errors), errors


def test_a_missing_env_deployment_is_reported(tmp_path: Path) -> None:
    folder = tmp_path / "k8s"
    shutil.copytree(K8S, folder)
    (folder / "qa.yaml").unlink()
    (folder / "kustomization.yaml").write_text((folder / "kustomization.yaml").read_text().replace("  - qa.yaml\n", ""))
    errors = checker.check(folder)
    assert errors == ["no Deployment serves the 'qa' env"], errors


def test_the_dockerfile_ships_every_package(tmp_path: Path) -> None:
    """The image the manifests run must hold every package of pyproject.toml (checked by docker/check_compose.py)."""
    spec = importlib.util.spec_from_file_location("check_compose", REPO / "docker" / "check_compose.py")
    assert spec and spec.loader
    compose = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(compose)
    assert set(compose.project_packages()) >= {"envs", "wire", "clients", "store", "services", "collector", "cli"}
    dockerfile = tmp_path / "Dockerfile"
    dockerfile.write_text((REPO / "docker" / "Dockerfile").read_text().replace("COPY cli ./cli\n", ""))
    errors = compose.check(REPO / "docker" / "compose.yaml", dockerfile=dockerfile)
    assert "Dockerfile: package 'cli' (pyproject's packages) is not copied into the image" in errors, errors
    assert not any("package" in e for e in compose.check()), "the real Dockerfile copies every package"
