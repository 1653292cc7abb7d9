"""The provenance record of a run: everything its data depends on beyond the job's config.

Stored with the run (`runs.provenance`), printed by `trajgym show RUN`, written next to
every export, and compared on `--resume` (the command line excepted): the trajgym
version, the env (name, version, modes in force, the digest of the data its service
loaded), the model (id and what the server reports of it), the policy, the prompt format
with the system prompt and tool schemas actually used, the decoding constraint, the
sampling defaults and the command line.
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
from importlib import metadata
from typing import Any

from collector.config import JobConfig, Policy
from envs.types import EnvInfo


def trajgym_version() -> str:
    try:
        return metadata.version("trajgym")
    except metadata.PackageNotFoundError:
        return "unknown"


_PASSWORD_IN_URL = re.compile(r"(\w[\w+.-]*://[^/\s:@]*:)[^/\s@]*@")


def redact(arg: str) -> str:
    """A command-line argument with any URL password replaced by ***."""
    return _PASSWORD_IN_URL.sub(r"\1***@", arg)


def digest(value: Any) -> str:
    """`sha256:<hex>` of a JSON value (canonical: sorted keys, no spaces)."""
    blob = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return "sha256:" + hashlib.sha256(blob.encode()).hexdigest()


def run_provenance(job: JobConfig, info: EnvInfo, *, model_name: str | None, model_card: dict[str, Any] | None,
                   system_prompt: str, tools: list[dict[str, Any]] | None, constraint: dict[str, Any] | None,
                   command: list[str] | None = None) -> dict[str, Any]:
    model = job.policy is Policy.model
    return {
        "trajgym_version": trajgym_version(),
        "env": {"name": info.name, "version": info.version, "modes": dict(info.modes),
                "data_digest": info.data_digest, "withheld_tasks": dict(info.withheld_tasks)},
        "model": {"id": model_name, "server": model_card or {}} if model else None,
        "policy": job.policy.value,
        "prompt_format": job.prompt_format_in_force(),
        "system_prompt": system_prompt,
        "tools": tools,                 # the schemas sent with every model call (native tool calling), else None
        "text_actions": list(info.text_actions),
        "constraint": constraint,       # the decoding constraint sent (--constrain), else None
        "sampling": job.sampling.model_dump() if model else None,
        "command": [redact(a) for a in (sys.argv if command is None else command)],
    }


def summary_rows(prov: dict[str, Any]) -> list[tuple[str, str]]:
    """(field, value) lines of a provenance record for a terminal: long texts shortened, schemas digested."""
    env = prov.get("env") or {}
    model = prov.get("model") or {}
    server = model.get("server") or {}
    tools = prov.get("tools")
    system = prov.get("system_prompt") or ""
    first = system.strip().splitlines()[0] if system.strip() else ""
    rows = [
        ("trajgym version", str(prov.get("trajgym_version"))),
        ("env", f"{env.get('name')} {env.get('version')}"),
        ("env modes", ", ".join(f"{k}={v}" for k, v in sorted((env.get("modes") or {}).items())) or "–"),
        ("env data digest", str(env.get("data_digest"))),
        ("model", str(model.get("id")) if model else "– (expert)"),
        ("model server reports", ", ".join(f"{k}={v}" for k, v in sorted(server.items())) or "–"),
        ("policy / prompt format", f"{prov.get('policy')} / {prov.get('prompt_format') or '–'}"),
        ("system prompt", f"{len(system)} chars, {digest(system)[:19]}…: {first[:100]}"),
        ("tools sent", "–" if not tools else
         f"{', '.join(str((t.get('function') or {}).get('name')) for t in tools)} ({digest(tools)[:19]}…)"),
        ("constraint", "–" if not prov.get("constraint") else f"{', '.join(prov['constraint'])} "
                                                             f"({digest(prov['constraint'])[:19]}…)"),
        ("sampling", json.dumps(prov.get("sampling"), sort_keys=True)),
        ("command", " ".join(prov.get("command") or [])),
    ]
    return rows
