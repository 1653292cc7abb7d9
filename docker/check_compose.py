"""Offline check of docker/compose.yaml and docker/Dockerfile — no Docker engine needed.

Run from the repository root: `python docker/check_compose.py [path/to/compose.yaml]`
(exit 0 and "compose check: OK ..." when consistent, else one line per problem and exit 1).

Checks: `${VAR}` interpolation as compose does it (defaults, `:?` required values from
docker/.env.example) and every variable documented in docker/README.md and .env.example;
every trajgym service's command parses with the real `trajgym` CLI (typer/click: the
sub-command exists, options exist, values convert); served env names are registered; each
service binds 0.0.0.0 on the port it publishes and health-checks; `--register` points at
the hub service's port, `--public-url` at the service itself, with the hub token in its
environment; the collector's env and model URLs point at real services and ports; the
SQLite store lives on a mounted volume; profiles (postgres, gpu, collect); depends_on
targets exist (optional when in another profile); published ports are unique; the
Dockerfile is python:3.11-slim, non-root, with a HEALTHCHECK, and copies every package pyproject.toml ships.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

DOCKER = Path(__file__).resolve().parent
REPO = DOCKER.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

ENV_SERVICE_PORT_PATHS = ("/readyz", "/healthz")
HEALTHCHECK_SCRIPT = "/usr/local/bin/trajgym-healthcheck"
EXPECTED_PROFILES = {"postgres": ["postgres"], "vllm": ["gpu"], "collect": ["collect"]}
CORE_SERVICES = ("hub", "webshop", "household", "sql", "qa")
_VAR = re.compile(r"\$(?:(\$)|\{([^}]*)\}|([A-Za-z_][A-Za-z0-9_]*))")
_EXPR = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?+])(.*))?$", re.DOTALL)


def project_packages() -> list[str]:
    """The top-level packages pyproject.toml ships (`[tool.setuptools.packages.find] include`)."""
    import tomllib

    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    include = pyproject["tool"]["setuptools"]["packages"]["find"]["include"]
    return sorted({pattern.rstrip("*").rstrip(".") for pattern in include})


def parse_trajgym(args: list[str]) -> tuple[str, dict[str, Any]] | str:
    """Parse `trajgym <args>` with the real CLI (typer/click), without running it: (sub-command, params),
    or the problem as a sentence. Shared by the compose and Kubernetes checks."""
    import typer

    from cli.main import app

    root = typer.main.get_command(app)  # typer vendors its own click: use the classes it hands out
    if not args:
        return "empty trajgym command"
    sub_name, rest = args[0], args[1:]
    root_ctx = root.context_class(root, info_name="trajgym")
    sub = root.get_command(root_ctx, sub_name) if hasattr(root, "get_command") else None
    if sub is None:
        return f"`trajgym {sub_name}` is not a trajgym command"
    try:
        with sub.make_context(sub_name, list(rest), parent=root_ctx) as ctx:
            return sub_name, dict(ctx.params)
    except Exception as err:  # click's UsageError/BadParameter (format_message) or Exit (--help)
        if hasattr(err, "format_message"):
            return f"`trajgym {' '.join(args)}`: {err.format_message()}"
        if type(err).__name__ == "Exit":
            return f"`trajgym {' '.join(args)}` only prints help"
        raise


class Checker:
    def __init__(self, compose_path: Path, env_file: Path, readme: Path, dockerfile: Path, project_dir: Path) -> None:
        self.compose_path = compose_path
        self.project_dir = project_dir
        self.env_file = env_file
        self.readme = readme
        self.dockerfile = dockerfile
        self.errors: list[str] = []
        self.used_vars: set[str] = set()
        self.env: dict[str, str] = {}
        self.documented: set[str] = set()

    def error(self, message: str) -> None:
        self.errors.append(message)

    # ----- interpolation ----------------------------------------------------------------
    def _load_env_file(self) -> None:
        if not self.env_file.is_file():
            self.error(f"{self.env_file.name} is missing")
            return
        for line in self.env_file.read_text().splitlines():
            m = re.match(r"^\s*(#\s*)?([A-Za-z_][A-Za-z0-9_]*)=(.*)$", line)
            if m:
                self.documented.add(m.group(2))
                if not m.group(1):
                    self.env[m.group(2)] = m.group(3).strip()

    def interpolate(self, value: Any, where: str) -> Any:
        if isinstance(value, dict):
            return {k: self.interpolate(v, f"{where}.{k}") for k, v in value.items()}
        if isinstance(value, list):
            return [self.interpolate(v, f"{where}[{i}]") for i, v in enumerate(value)]
        if not isinstance(value, str):
            return value

        def repl(m: re.Match[str]) -> str:
            if m.group(1):
                return "$"
            expr = m.group(2) if m.group(2) is not None else m.group(3)
            parsed = _EXPR.match(expr)
            if not parsed:
                self.error(f"{where}: bad interpolation ${{{expr}}}")
                return ""
            name, op, arg = parsed.groups()
            self.used_vars.add(name)
            val = self.env.get(name)
            if op == ":-":
                return val if val else arg
            if op == "-":
                return val if val is not None else arg
            if op in (":?", "?"):
                if not val:
                    self.error(f"{where}: required variable {name} has no value in {self.env_file.name}")
                return val or ""
            if op in (":+", "+"):
                return arg if val else ""
            if val is None:
                self.error(f"{where}: ${{{name}}} has no default and no value in {self.env_file.name}")
            return val or ""

        return _VAR.sub(repl, value)

    # ----- helpers ----------------------------------------------------------------------
    @staticmethod
    def container_ports(service: Mapping[str, Any]) -> set[int]:
        ports: set[int] = set()
        for entry in service.get("ports", []) or []:
            if isinstance(entry, dict):
                ports.add(int(entry["target"]))
            else:
                ports.add(int(str(entry).split("/")[0].rsplit(":", 1)[-1]))
        ports.update(int(p) for p in service.get("expose", []) or [])
        return ports

    @staticmethod
    def published_ports(service: Mapping[str, Any]) -> list[str]:
        out = []
        for entry in service.get("ports", []) or []:
            if isinstance(entry, dict):
                if entry.get("published"):
                    out.append(str(entry["published"]))
            elif str(entry).count(":") >= 1:
                out.append(str(entry).split("/")[0].rsplit(":", 1)[0])
        return out

    @staticmethod
    def health_urls(service: Mapping[str, Any]) -> list[str]:
        test = (service.get("healthcheck") or {}).get("test") or []
        text = " ".join(test) if isinstance(test, list) else str(test)
        return re.findall(r"https?://[^\s'\"]+", text)

    @staticmethod
    def volume_targets(service: Mapping[str, Any]) -> set[str]:
        targets = set()
        for v in service.get("volumes", []) or []:
            targets.add(v["target"] if isinstance(v, dict) else str(v).split(":")[1])
        return targets

    def parse_cli(self, name: str, args: list[str]) -> tuple[str, dict[str, Any]] | None:
        """Parse `trajgym <args>` with the real CLI, without running it: (sub-command, params)."""
        result = parse_trajgym(args)
        if isinstance(result, str):
            self.error(f"{name}: {result}")
            return None
        return result

    # ----- checks -----------------------------------------------------------------------
    def check_dockerfile(self) -> None:
        if not self.dockerfile.is_file():
            self.error("docker/Dockerfile is missing")
            return
        text = self.dockerfile.read_text()
        stages = re.split(r"(?m)^FROM\s+", text)[1:]
        if not stages:
            self.error("Dockerfile: no FROM")
            return
        final = stages[-1]
        if not final.startswith("python:3.11-slim"):
            self.error("Dockerfile: the final stage is not FROM python:3.11-slim")
        users = re.findall(r"(?m)^USER\s+(\S+)", final)
        if not users or users[-1] in ("root", "0", "0:0"):
            self.error("Dockerfile: the final stage does not switch to a non-root USER")
        if not re.search(r"(?m)^HEALTHCHECK\s+", final):
            self.error("Dockerfile: no HEALTHCHECK")
        if HEALTHCHECK_SCRIPT not in final:
            self.error(f"Dockerfile: {HEALTHCHECK_SCRIPT} (used by the compose health checks) is not installed")
        copied = {src.rstrip("/") for line in re.findall(r"(?m)^COPY\s+(?!--from)(.+)$", text) for src in line.split()[:-1]}
        for package in project_packages():
            if package not in copied:
                self.error(f"Dockerfile: package {package!r} (pyproject's packages) is not copied into the image")

    def run(self) -> list[str]:
        self._load_env_file()
        self.check_dockerfile()
        raw = yaml.safe_load(self.compose_path.read_text())
        if not isinstance(raw, dict) or not isinstance(raw.get("services"), dict):
            self.error("compose.yaml has no services mapping")
            return self.errors
        doc = self.interpolate(raw, "compose")
        services: dict[str, dict[str, Any]] = doc["services"]
        for required in (*CORE_SERVICES, *EXPECTED_PROFILES):
            if required not in services:
                self.error(f"service {required!r} is missing")
        declared_volumes = set((doc.get("volumes") or {}).keys())

        parsed: dict[str, tuple[str, dict[str, Any]]] = {}
        for name, svc in services.items():
            command = svc.get("command")
            if self._uses_project_image(name, svc):
                if not (isinstance(command, list) and command and command[0] == "trajgym"):
                    self.error(f"{name}: command must be a list starting with 'trajgym'")
                    continue
                result = self.parse_cli(name, [str(a) for a in command[1:]])
                if result is not None:
                    parsed[name] = result
            for v in svc.get("volumes", []) or []:
                source = v.get("source") if isinstance(v, dict) else str(v).split(":")[0]
                if source and not source.startswith((".", "/", "~")) and source not in declared_volumes:
                    self.error(f"{name}: volume {source!r} is not declared under top-level volumes")

        hubs = {n: p for n, (cmd, p) in parsed.items() if cmd == "hub"}
        served: dict[str, str] = {}  # env name -> service
        for name, (cmd, params) in parsed.items():
            svc = services[name]
            if cmd in ("serve", "hub"):
                self._check_listener(name, svc, params)
            if cmd == "serve":
                self._check_serve(name, svc, params, services, hubs, served)
            elif cmd == "hub":
                self._check_store(name, svc, params.get("store"))
                if "TRAJGYM_HUB_TOKEN" not in (svc.get("environment") or {}) and not params.get("token"):
                    self.error(f"{name}: the hub gets no token (TRAJGYM_HUB_TOKEN or --token)")
            elif cmd == "collect":
                self._check_collect(name, svc, params, services, parsed)
        from envs.registry import ENVS

        for env_name in ENVS:
            if env_name not in served:
                self.error(f"no service serves the {env_name!r} env")

        self._check_profiles_and_deps(services)
        self._check_other_images(services)
        seen: dict[str, str] = {}
        for name, svc in services.items():
            for port in self.published_ports(svc):
                if port in seen:
                    self.error(f"{name}: host port {port} is also published by {seen[port]}")
                seen[port] = name
            hc = svc.get("healthcheck") or {}
            if hc.get("disable") and not (svc.get("restart") == "no" and svc.get("profiles")):
                self.error(f"{name}: only one-shot job services may disable their health check")
            if not hc.get("disable") and not hc.get("test"):
                self.error(f"{name}: no healthcheck test")
        self._check_documented()
        return self.errors

    def _uses_project_image(self, name: str, svc: Mapping[str, Any]) -> bool:
        build = svc.get("build")
        if not build:
            return False
        context = (self.project_dir / (build.get("context", ".") if isinstance(build, dict) else build)).resolve()
        dockerfile = context / (build.get("dockerfile", "Dockerfile") if isinstance(build, dict) else "Dockerfile")
        if dockerfile.resolve() != self.dockerfile.resolve():
            self.error(f"{name}: builds {dockerfile}, not docker/Dockerfile")
        return True

    def _check_listener(self, name: str, svc: Mapping[str, Any], params: Mapping[str, Any]) -> None:
        port = params.get("port")
        if params.get("host") != "0.0.0.0":
            self.error(f"{name}: binds {params.get('host')!r}; in a container it must bind 0.0.0.0")
        if port not in self.container_ports(svc):
            self.error(f"{name}: listens on {port} but publishes/exposes {sorted(self.container_ports(svc))}")
        urls = self.health_urls(svc)
        if not any(urlsplit(u).port == port and urlsplit(u).path in ENV_SERVICE_PORT_PATHS for u in urls):
            self.error(f"{name}: the healthcheck does not probe /readyz or /healthz on port {port} (found {urls})")
        test = (svc.get("healthcheck") or {}).get("test") or []
        if HEALTHCHECK_SCRIPT not in test:
            self.error(f"{name}: the healthcheck does not use {HEALTHCHECK_SCRIPT}")

    def _check_serve(self, name: str, svc: Mapping[str, Any], params: Mapping[str, Any], services: Mapping[str, Any],
                     hubs: Mapping[str, Mapping[str, Any]], served: dict[str, str]) -> None:
        from envs.registry import ENVS

        env_name = params.get("env")
        if env_name not in ENVS:
            self.error(f"{name}: serves {env_name!r}, not a registered env ({', '.join(ENVS)})")
        elif env_name in served:
            self.error(f"{name}: {env_name!r} is already served by {served[env_name]}")
        else:
            served[env_name] = name
        register = params.get("register")
        if not register:
            self.error(f"{name}: no --register HUB_URL (self-registration with the hub)")
            return
        hub = urlsplit(register)
        if hub.hostname not in hubs:
            self.error(f"{name}: --register {register} does not name the hub service ({', '.join(hubs) or 'none'})")
        elif hub.port != hubs[hub.hostname].get("port"):
            self.error(f"{name}: --register {register} but the hub listens on {hubs[hub.hostname].get('port')}")
        if hub.hostname not in (svc.get("depends_on") or {}):
            self.error(f"{name}: does not depend_on the hub service")
        if "TRAJGYM_HUB_TOKEN" not in (svc.get("environment") or {}) and not params.get("hub_token"):
            self.error(f"{name}: no hub token (TRAJGYM_HUB_TOKEN or --hub-token)")
        public = urlsplit(params.get("public_url") or "")
        if public.hostname != name or public.port != params.get("port"):
            self.error(f"{name}: --public-url {params.get('public_url')} is not http://{name}:{params.get('port')}")

    def _check_store(self, name: str, svc: Mapping[str, Any], store: str | None) -> None:
        if not store:
            return
        from store.connect import normalize_url as normalize_store_url

        url = normalize_store_url(store)
        if url.startswith("sqlite:///"):
            path = url[len("sqlite:///"):]
            if not path.startswith("/") or str(Path(path).parent) not in self.volume_targets(svc):
                self.error(f"{name}: the SQLite store {path} is not on a mounted volume")

    def _service_port(self, services: Mapping[str, Any], parsed: Mapping[str, tuple[str, dict[str, Any]]], host: str) -> set[int]:
        if host in parsed and "port" in parsed[host][1]:
            return {parsed[host][1]["port"]}
        return self.container_ports(services.get(host) or {})

    def _check_collect(self, name: str, svc: Mapping[str, Any], params: Mapping[str, Any], services: Mapping[str, Any],
                       parsed: Mapping[str, tuple[str, dict[str, Any]]]) -> None:
        env = params.get("env") or ""
        environment = svc.get("environment") or {}
        if re.match(r"^https?://", env):
            urls = [env]
        else:
            var = "TRAJGYM_ENV_URL_" + re.sub(r"\W", "_", env).upper()
            if var not in environment:
                self.error(f"{name}: --env {env!r} is not a URL and {var} is not set")
            urls = [str(v) for k, v in environment.items() if k.startswith("TRAJGYM_ENV_URL_")]
        for url in urls:
            parts = urlsplit(url)
            if parts.hostname not in services or parts.port not in self._service_port(services, parsed, parts.hostname):
                self.error(f"{name}: env URL {url} is not a service port of this compose file")
            elif parts.hostname not in (svc.get("depends_on") or {}):
                self.error(f"{name}: does not depend_on {parts.hostname}")
        model = params.get("model")
        if model:
            parts = urlsplit(model)
            if parts.hostname not in services or parts.port not in self._service_port(services, parsed, parts.hostname):
                self.error(f"{name}: --model {model} is not a service port of this compose file")
        self._check_store(name, svc, params.get("store"))

    def _check_profiles_and_deps(self, services: Mapping[str, Any]) -> None:
        for name, profiles in EXPECTED_PROFILES.items():
            if name in services and services[name].get("profiles") != profiles:
                self.error(f"{name}: profiles {services[name].get('profiles')} (expected {profiles})")
        for name in CORE_SERVICES:
            if name in services and services[name].get("profiles"):
                self.error(f"{name}: a core service must not be in a profile")
        for name, svc in services.items():
            deps = svc.get("depends_on") or {}
            deps = {d: {} for d in deps} if isinstance(deps, list) else deps
            for dep, spec in deps.items():
                if dep not in services:
                    self.error(f"{name}: depends_on unknown service {dep!r}")
                    continue
                other = set(services[dep].get("profiles") or [])
                if other and not other & set(svc.get("profiles") or []) and (spec or {}).get("required", True):
                    self.error(f"{name}: depends_on {dep} (profile {sorted(other)}) without `required: false`")
                condition = (spec or {}).get("condition", "service_started")
                if condition == "service_healthy" and (services[dep].get("healthcheck") or {}).get("disable"):
                    self.error(f"{name}: waits for {dep} to be healthy but {dep} has no health check")

    def _check_other_images(self, services: Mapping[str, Any]) -> None:
        vllm = services.get("vllm")
        if vllm:
            if not str(vllm.get("image", "")).startswith("vllm/vllm-openai"):
                self.error("vllm: not the official vllm/vllm-openai image")
            cmd = [str(a) for a in vllm.get("command") or []]
            port = int(cmd[cmd.index("--port") + 1]) if "--port" in cmd else 8000
            if "--model" not in cmd:
                self.error("vllm: no --model")
            if port not in self.container_ports(vllm):
                self.error(f"vllm: serves on {port} but publishes {sorted(self.container_ports(vllm))}")
            if not any(urlsplit(u).port == port for u in self.health_urls(vllm)):
                self.error(f"vllm: the healthcheck does not probe port {port}")
        pg = services.get("postgres")
        if pg:
            if not str(pg.get("image", "")).startswith("postgres:16"):
                self.error("postgres: not a postgres:16 image")
            if 5432 not in self.container_ports(pg):
                self.error("postgres: port 5432 not published")
            if "pg_isready" not in str((pg.get("healthcheck") or {}).get("test")):
                self.error("postgres: the healthcheck does not use pg_isready")

    def _check_documented(self) -> None:
        readme = self.readme.read_text() if self.readme.is_file() else ""
        if not readme:
            self.error("docker/README.md is missing")
        for var in sorted(self.used_vars):
            if not re.search(rf"\b{re.escape(var)}\b", readme):
                self.error(f"${{{var}}} is not documented in docker/README.md")
            if var not in self.documented:
                self.error(f"${{{var}}} is not listed in {self.env_file.name}")


def check(compose: Path = DOCKER / "compose.yaml", *, env_file: Path = DOCKER / ".env.example",
          readme: Path = DOCKER / "README.md", dockerfile: Path = DOCKER / "Dockerfile", project_dir: Path = DOCKER) -> list[str]:
    """All problems found (empty when the compose file is consistent). Relative paths resolve against `project_dir`."""
    return Checker(compose, env_file, readme, dockerfile, project_dir).run()


def main(argv: list[str]) -> int:
    compose = Path(argv[0]) if argv else DOCKER / "compose.yaml"
    errors = check(compose)
    if errors:
        for e in errors:
            print(f"compose check: {e}")
        return 1
    services = yaml.safe_load(compose.read_text())["services"]
    print(f"compose check: OK ({compose}: {len(services)} services, commands parsed by the trajgym CLI)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
