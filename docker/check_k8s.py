"""Offline check of the Kubernetes manifests in docker/k8s/ — no cluster needed.

Run from the repository root: `python docker/check_k8s.py [DIR]` (exit 0 and "k8s check: OK ..." when
consistent, else one line per problem and exit 1).

Checks: every document validates against the Kubernetes OpenAPI schemas shipped by
`kubernetes-validate` (strict: unknown fields are errors), for the oldest and the newest version we
support; kustomization.yaml lists every manifest but the collection Job; every container of the project
image runs a real `trajgym` command — `$(VAR)` references expanded as the kubelet does from the
container's `env` and `envFrom` (ConfigMap values from the manifests, Secret and downward-API values as
placeholders) and parsed with the real CLI (docker/check_compose.py's parser); served env names are
registered and each of the four envs is served; services bind 0.0.0.0 on their containerPort, with a
readiness probe on /readyz and a liveness probe on /healthz of that port; `--register` names the hub
Service and its port, whose targetPort is the hub's container port; `--public-url` is the pod's own IP
(downward API status.podIP) and port, so the hub addresses each replica; the hub token and the store
come from the documented Secret; the collection Job resolves the env through the hub Service, uses a
PostgreSQL store (several pods share one run), `--resume`s, and never restarts in place.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

DOCKER = Path(__file__).resolve().parent
REPO = DOCKER.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
if str(DOCKER) not in sys.path:
    sys.path.insert(0, str(DOCKER))

from check_compose import parse_trajgym  # noqa: E402

K8S_VERSIONS = ("1.29.0", "latest")  # oldest we support; the newest kubernetes-validate ships
IMAGE = "trajgym"
SECRET = "trajgym"
SECRET_KEYS = {"hub-token": "a-long-random-token", "store-url": "postgresql+psycopg://trajgym:secret@postgres.example:5432/trajgym"}
POD_IP = "10.42.0.17"
SEPARATE = {"collect-job.yaml"}  # applied on its own, not by the kustomization
_REF = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)")


@contextlib.contextmanager
def container_environment(env: Mapping[str, str]) -> Iterator[None]:
    """os.environ as the container would have it for the trajgym variables (this process's own removed)."""
    saved = {k: v for k, v in os.environ.items() if k.startswith("TRAJGYM_")}
    for k in saved:
        del os.environ[k]
    os.environ.update({k: v for k, v in env.items() if k.startswith("TRAJGYM_")})
    try:
        yield
    finally:
        for k in [k for k in os.environ if k.startswith("TRAJGYM_")]:
            del os.environ[k]
        os.environ.update(saved)


def k8s_versions() -> list[str]:
    from kubernetes_validate.utils import latest_version

    return [latest_version() if v == "latest" else v for v in K8S_VERSIONS]


class K8sChecker:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.errors: list[str] = []
        self.docs: list[tuple[str, dict[str, Any]]] = []

    def error(self, message: str) -> None:
        self.errors.append(message)

    # ----- loading and schemas ----------------------------------------------------------
    def load(self) -> None:
        for path in sorted(self.folder.glob("*.yaml")):
            if path.name == "kustomization.yaml":
                continue
            try:
                docs = [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
            except yaml.YAMLError as err:
                self.error(f"{path.name}: not YAML: {err}")
                continue
            for doc in docs:
                if not isinstance(doc, dict) or "kind" not in doc:
                    self.error(f"{path.name}: a document without kind")
                    continue
                self.docs.append((path.name, doc))

    def check_schemas(self) -> None:
        import kubernetes_validate as kv

        for version in k8s_versions():
            for file, doc in self.docs:
                name = f"{file}: {doc.get('kind')}/{(doc.get('metadata') or {}).get('name')}"
                try:
                    kv.validate(doc, version, strict=True)
                except kv.ValidationError as err:
                    where = ".".join(str(p) for p in err.path)
                    self.error(f"{name}: Kubernetes {version} schema: {where}: {err.message}")
                except (kv.SchemaNotFoundError, kv.InvalidSchemaError) as err:
                    self.error(f"{name}: no Kubernetes {version} schema for {doc.get('apiVersion')} {doc.get('kind')}: {err}")

    def check_kustomization(self) -> None:
        path = self.folder / "kustomization.yaml"
        if not path.is_file():
            self.error("kustomization.yaml is missing")
            return
        k = yaml.safe_load(path.read_text()) or {}
        listed = set(k.get("resources") or [])
        files = {p.name for p in self.folder.glob("*.yaml")} - {"kustomization.yaml"}
        for missing in sorted(files - listed - SEPARATE):
            self.error(f"kustomization.yaml: {missing} is not in resources")
        for extra in sorted(listed - files):
            self.error(f"kustomization.yaml: resource {extra} does not exist")
        for separate in sorted(listed & SEPARATE):
            self.error(f"kustomization.yaml: {separate} is applied on its own, not with the stack")
        if not any(i.get("name") == IMAGE for i in k.get("images") or []):
            self.error(f"kustomization.yaml: no images entry for {IMAGE!r}")

    # ----- helpers ----------------------------------------------------------------------
    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        return [d for _, d in self.docs if d.get("kind") == kind]

    def config_maps(self) -> dict[str, dict[str, str]]:
        return {d["metadata"]["name"]: {k: str(v) for k, v in (d.get("data") or {}).items()} for d in self.of_kind("ConfigMap")}

    def container_env(self, where: str, container: Mapping[str, Any]) -> dict[str, str]:
        """The container's environment as the kubelet builds it (envFrom first, then env), with
        placeholders for Secret and downward-API values."""
        maps = self.config_maps()
        env: dict[str, str] = {}
        for source in container.get("envFrom") or []:
            ref = (source.get("configMapRef") or {}).get("name")
            if ref is not None:
                if ref not in maps:
                    self.error(f"{where}: envFrom ConfigMap {ref!r} is not in the manifests")
                env.update({source.get("prefix", "") + k: v for k, v in maps.get(ref, {}).items()})
            elif "secretRef" in source:
                self.error(f"{where}: envFrom a whole Secret; name the keys (env.valueFrom.secretKeyRef)")
        for var in container.get("env") or []:
            name = var["name"]
            if "value" in var:
                env[name] = _REF.sub(lambda m: env.get(m.group(1), m.group(0)), str(var["value"]))
                continue
            source = var.get("valueFrom") or {}
            if "secretKeyRef" in source:
                ref = source["secretKeyRef"]
                if ref.get("name") != SECRET or ref.get("key") not in SECRET_KEYS:
                    self.error(f"{where}: {name} from Secret {ref.get('name')}/{ref.get('key')}; the documented one is "
                               f"{SECRET} with keys {', '.join(SECRET_KEYS)}")
                env[name] = SECRET_KEYS.get(ref.get("key", ""), "secret")
            elif "configMapKeyRef" in source:
                ref = source["configMapKeyRef"]
                value = maps.get(ref.get("name"), {}).get(ref.get("key"))
                if value is None:
                    self.error(f"{where}: {name} from ConfigMap {ref.get('name')}/{ref.get('key')}, which is not in the manifests")
                env[name] = value or ""
            elif "fieldRef" in source:
                path = source["fieldRef"].get("fieldPath")
                env[name] = POD_IP if path == "status.podIP" else f"<{path}>"
            else:
                env[name] = "<value>"
        return env

    def expand(self, where: str, args: list[str], env: Mapping[str, str]) -> list[str]:
        def repl(m: re.Match[str]) -> str:
            if m.group(1) not in env:
                self.error(f"{where}: $({m.group(1)}) is not in the container's environment (the kubelet leaves it as is)")
                return m.group(0)
            return env[m.group(1)]

        return [_REF.sub(repl, a) for a in args]

    @staticmethod
    def probe(container: Mapping[str, Any], kind: str) -> tuple[str | None, Any]:
        get = (container.get(kind) or {}).get("httpGet") or {}
        return get.get("path"), get.get("port")

    @staticmethod
    def container_ports(container: Mapping[str, Any]) -> dict[Any, int]:
        ports: dict[Any, int] = {}
        for p in container.get("ports") or []:
            ports[p["containerPort"]] = p["containerPort"]
            if "name" in p:
                ports[p["name"]] = p["containerPort"]
        return ports

    # ----- workloads --------------------------------------------------------------------
    def workloads(self) -> list[tuple[str, dict[str, Any], dict[str, Any], dict[str, Any]]]:
        """(where, workload, pod spec, container) for each container of the project image."""
        out = []
        for file, doc in self.docs:
            if doc.get("kind") not in ("Deployment", "Job", "StatefulSet", "DaemonSet", "CronJob"):
                continue
            spec = doc.get("spec") or {}
            if doc["kind"] == "CronJob":
                spec = (spec.get("jobTemplate") or {}).get("spec") or {}
            pod = (spec.get("template") or {}).get("spec") or {}
            for container in pod.get("containers") or []:
                image = str(container.get("image", ""))
                where = f"{file}: {doc['kind']}/{doc['metadata']['name']} container {container.get('name')}"
                if image.split("@")[0].rsplit(":", 1)[0].rsplit("/", 1)[-1] != IMAGE:
                    continue
                out.append((where, doc, pod, container))
        return out

    def check_workloads(self) -> None:
        from envs.registry import ENVS

        parsed: list[tuple[str, dict[str, Any], dict[str, Any], dict[str, Any], str, dict[str, Any], dict[str, str]]] = []
        for where, doc, pod, container in self.workloads():
            argv = [str(a) for a in (container.get("command") or []) + (container.get("args") or [])]
            if not argv or argv[0] != "trajgym":
                self.error(f"{where}: the command must start with 'trajgym' (got {argv[:2]})")
                continue
            env = self.container_env(where, container)
            with container_environment(env):  # options with an envvar (TRAJGYM_STORE, ...) read it, as in the pod
                result = parse_trajgym(self.expand(where, argv[1:], env))
            if isinstance(result, str):
                self.error(f"{where}: {result}")
                continue
            sub, params = result
            parsed.append((where, doc, pod, container, sub, params, env))
            ctx = pod.get("securityContext") or {}
            if not ctx.get("runAsNonRoot"):
                self.error(f"{where}: the pod does not set securityContext.runAsNonRoot")

        hubs = [(where, doc, container, params) for where, doc, _, container, sub, params, _ in parsed if sub == "hub"]
        if len(hubs) != 1:
            self.error(f"exactly one hub Deployment expected, found {len(hubs)}")
        hub_service = self._hub_service(hubs[0]) if hubs else None
        served: dict[str, str] = {}
        for where, doc, pod, container, sub, params, env in parsed:
            if sub in ("serve", "hub"):
                self._check_listener(where, container, params)
                if doc.get("kind") != "Deployment":
                    self.error(f"{where}: a long-running service belongs in a Deployment")
            if sub == "hub":
                if not (params.get("token") or "TRAJGYM_HUB_TOKEN" in env):
                    self.error(f"{where}: the hub gets no token (TRAJGYM_HUB_TOKEN from the Secret)")
                self._check_store(where, params.get("store") or env.get("TRAJGYM_STORE"), env)
            elif sub == "serve":
                name = params.get("env")
                if name not in ENVS:
                    self.error(f"{where}: serves {name!r}, not a registered env ({', '.join(ENVS)})")
                elif name in served:
                    self.error(f"{where}: {name!r} is already served by {served[name]}")
                else:
                    served[name] = where
                self._check_serve(where, doc, container, params, env, hub_service)
            elif sub == "collect":
                self._check_collect(where, doc, pod, params, env, hub_service, set(ENVS))
            else:
                self.error(f"{where}: `trajgym {sub}` is not a service or a job of this stack")
        for name in ENVS:
            if name not in served:
                self.error(f"no Deployment serves the {name!r} env")
        if not any(p[4] == "collect" for p in parsed):
            self.error("no collection Job")

    def _check_listener(self, where: str, container: Mapping[str, Any], params: Mapping[str, Any]) -> None:
        port = params.get("port")
        if params.get("host") != "0.0.0.0":
            self.error(f"{where}: binds {params.get('host')!r}; in a pod it must bind 0.0.0.0")
        ports = self.container_ports(container)
        if port not in ports.values():
            self.error(f"{where}: listens on {port} but declares containerPort {sorted(set(ports.values()))}")
        for kind, path in (("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")):
            got_path, got_port = self.probe(container, kind)
            if got_path != path or ports.get(got_port, got_port) != port:
                self.error(f"{where}: {kind} is not GET {path} on port {port} (found {got_path} on {got_port})")
        startup_path, startup_port = self.probe(container, "startupProbe")
        if startup_path is not None and (startup_path not in ("/readyz", "/healthz") or ports.get(startup_port, startup_port) != port):
            self.error(f"{where}: startupProbe is not /readyz or /healthz on port {port}")

    def _hub_service(self, hub: tuple[str, dict[str, Any], dict[str, Any], dict[str, Any]]) -> tuple[str, int] | None:
        where, doc, container, params = hub
        labels = (((doc.get("spec") or {}).get("template") or {}).get("metadata") or {}).get("labels") or {}
        ports = self.container_ports(container)
        for svc in self.of_kind("Service"):
            spec = svc.get("spec") or {}
            selector = spec.get("selector") or {}
            if not selector or any(labels.get(k) != v for k, v in selector.items()):
                continue
            for p in spec.get("ports") or []:
                target = p.get("targetPort", p.get("port"))
                if ports.get(target, target) == params.get("port"):
                    return svc["metadata"]["name"], int(p["port"])
            self.error(f"Service {svc['metadata']['name']}: selects the hub but no port targets its port {params.get('port')}")
        self.error(f"{where}: no Service selects the hub's pods")
        return None

    def _check_hub_url(self, where: str, flag: str, url: str | None, hub_service: tuple[str, int] | None) -> None:
        if not url:
            self.error(f"{where}: no {flag} HUB_URL")
            return
        parts = urlsplit(url)
        if hub_service is not None and (parts.hostname, parts.port or 80) != hub_service:
            self.error(f"{where}: {flag} {url} is not the hub Service (http://{hub_service[0]}:{hub_service[1]})")

    def _check_serve(self, where: str, doc: Mapping[str, Any], container: Mapping[str, Any], params: Mapping[str, Any],
                     env: Mapping[str, str], hub_service: tuple[str, int] | None) -> None:
        self._check_hub_url(where, "--register", params.get("register"), hub_service)
        if not (params.get("hub_token") or "TRAJGYM_HUB_TOKEN" in env):
            self.error(f"{where}: no hub token (TRAJGYM_HUB_TOKEN from the Secret)")
        public = urlsplit(params.get("public_url") or "")
        if public.hostname != POD_IP or public.port != params.get("port"):
            self.error(f"{where}: --public-url {params.get('public_url')} is not http://$(POD_IP):{params.get('port')} "
                       f"with POD_IP from the downward API (status.podIP): the hub must reach each replica itself")
        replicas = (doc.get("spec") or {}).get("replicas", 1)
        if not isinstance(replicas, int) or replicas < 1:
            self.error(f"{where}: replicas {replicas!r}")

    def _check_store(self, where: str, store: str | None, env: Mapping[str, str]) -> None:
        if not store:
            self.error(f"{where}: no store (--store or TRAJGYM_STORE)")
            return
        if not store.startswith("postgresql"):
            self.error(f"{where}: store {store!r}: pods on several nodes share one run and one registry: use PostgreSQL")

    def _check_collect(self, where: str, doc: Mapping[str, Any], pod: Mapping[str, Any], params: Mapping[str, Any],
                       env: Mapping[str, str], hub_service: tuple[str, int] | None, envs: set[str]) -> None:
        if doc.get("kind") not in ("Job", "CronJob"):
            self.error(f"{where}: a collection runs to its end: a Job, not a {doc.get('kind')}")
        if pod.get("restartPolicy") not in ("Never", "OnFailure"):
            self.error(f"{where}: a Job's pods have restartPolicy Never or OnFailure")
        self._check_hub_url(where, "--hub", params.get("hub"), hub_service)
        if params.get("env") not in envs:
            self.error(f"{where}: --env {params.get('env')!r} is not an env served here (resolved through the hub)")
        if not params.get("resume"):
            self.error(f"{where}: without --resume a replaced or parallel pod cannot join the run")
        self._check_store(where, params.get("store"), env)
        if str(params.get("policy", "")).endswith("model") and not params.get("model"):
            self.error(f"{where}: --policy model without --model")

    def check_documented(self) -> None:
        readme = self.folder / "README.md"
        text = readme.read_text() if readme.is_file() else ""
        if not text:
            self.error("docker/k8s/README.md is missing")
            return
        for key in SECRET_KEYS:
            if not re.search(rf"--from-literal={re.escape(key)}=", text):
                self.error(f"README.md: the Secret key {key!r} is not in its `kubectl create secret` command")
        for cm in self.config_maps().values():
            for key in cm:
                if key not in text:
                    self.error(f"README.md: ConfigMap key {key} is not documented")

    def run(self) -> list[str]:
        self.load()
        self.check_schemas()
        self.check_kustomization()
        self.check_workloads()
        self.check_documented()
        return self.errors


def check(folder: Path = DOCKER / "k8s") -> list[str]:
    """All problems found in the manifests of `folder` (empty when consistent)."""
    return K8sChecker(folder).run()


def main(argv: list[str]) -> int:
    folder = Path(argv[0]) if argv else DOCKER / "k8s"
    checker = K8sChecker(folder)
    errors = checker.run()
    if errors:
        for e in errors:
            print(f"k8s check: {e}")
        return 1
    print(f"k8s check: OK ({folder}: {len(checker.docs)} resources valid for Kubernetes {' and '.join(k8s_versions())}, "
          f"commands parsed by the trajgym CLI)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
