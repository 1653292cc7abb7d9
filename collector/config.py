"""The job: what a collection run is (pydantic), loaded from CLI flags and/or a YAML/TOML file.

`JobConfig.identity()` is the part that defines the run's data (env, tasks, samples,
policy, prompt format, model name, sampling, limits); its SHA-256 is the config hash
stored with the run and checked on `--resume`. Endpoints, concurrency, timeouts and
retry limits are operational: they may differ between machines sharing one run.

Sampling is explicit: `Sampling` holds every parameter sent to the model server; each
episode's sample gets its own seed, `episode_seed(run seed, task id, sample index)`,
and model call i of the episode sends that seed + i. Several samples per task at
temperature 0 are refused (they would be identical greedy samples, and pass@k would
mean nothing) unless `allow_identical_samples` says that is intended.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tomllib
from enum import Enum
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator


class Policy(str, Enum):
    model = "model"
    expert = "expert"


class PromptFormat(str, Enum):
    react = "react"
    tools = "tools"


class SplitChoice(str, Enum):
    train = "train"
    dev = "dev"
    test = "test"
    all = "all"


class Extras(str, Enum):
    """vLLM extras (token ids, logprobs): `auto` asks and drops them if the server refuses."""

    auto = "auto"
    on = "on"
    off = "off"


SEED_MODULUS = 2**31  # per-request seeds stay below 2^31: every OpenAI-compatible server takes them


def episode_seed(run_seed: int | None, task_id: str, sample: int) -> int:
    """The seed of one sample of one task: SHA-256 of (run seed, task id, sample index), below 2^31."""
    blob = f"{run_seed or 0}\x00{task_id}\x00{sample}".encode()
    return int.from_bytes(hashlib.sha256(blob).digest()[:8], "big") % SEED_MODULUS


def call_seed(seed: int, call: int) -> int:
    """The seed of model call `call` (0, 1, ...) of an episode whose seed is `seed`."""
    return (seed + call) % SEED_MODULUS


# Sampling fields sent only when set (servers that do not know them may refuse them).
_OPTIONAL_FIELDS = ("top_k", "min_p", "presence_penalty", "frequency_penalty", "repetition_penalty")


class Sampling(BaseModel):
    """What is sent to the model server with every call (`extra_body` for anything else it accepts)."""

    model_config = ConfigDict(extra="forbid")

    temperature: float = Field(default=0.0, ge=0.0, le=5.0)
    top_p: float = Field(default=1.0, gt=0.0, le=1.0)
    max_tokens: int = Field(default=512, ge=1, description="completion tokens per model call")
    seed: int | None = Field(default=None, ge=0, description="run seed (default 0): each episode's seed derives from it")
    stop: list[str] | None = None
    top_k: int | None = Field(default=None, ge=-1, description="vLLM: -1 = off")
    min_p: float | None = Field(default=None, ge=0.0, le=1.0)
    presence_penalty: float | None = Field(default=None, ge=-2.0, le=2.0)
    frequency_penalty: float | None = Field(default=None, ge=-2.0, le=2.0)
    repetition_penalty: float | None = Field(default=None, gt=0.0)
    extra_body: dict[str, Any] | None = Field(default=None, description="extra request fields, e.g. vLLM's structured_outputs")

    def request_fields(self) -> dict[str, Any]:
        """The sampling fields of a request body (without the seed and `extra_body`)."""
        out: dict[str, Any] = {"temperature": self.temperature, "top_p": self.top_p, "max_tokens": self.max_tokens}
        if self.stop:
            out["stop"] = self.stop
        for name in _OPTIONAL_FIELDS:
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        return out

    def for_episode(self, task_id: str, sample: int) -> tuple[Sampling, dict[str, Any]]:
        """(this sampling with the episode's seed, the record of what is sent: fields, extra body, seed)."""
        seed = episode_seed(self.seed, task_id, sample)
        sent = {**self.request_fields(), **(self.extra_body or {}), "seed": seed}
        return self.model_copy(update={"seed": seed}), sent

    def identity(self) -> dict[str, Any]:
        """For the config hash: the original fields always, the later ones only when set (old hashes hold)."""
        data = self.model_dump()
        for name in _OPTIONAL_FIELDS:
            if data[name] is None:
                del data[name]
        return data


class JobConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    run_name: str = Field(min_length=1, max_length=200)
    env: str = Field(min_length=1, description="env service URL, or an env name resolved through the hub (--hub) "
                                               "or TRAJGYM_ENV_URL_<NAME>")
    hub: str | None = Field(default_factory=lambda: os.environ.get("TRAJGYM_HUB_URL"),
                            description="hub URL that resolves env names and places episodes on replicas")
    store: str = Field(default="trajgym.db", description="SQLAlchemy URL or SQLite file path")
    policy: Policy = Policy.model
    model: str | None = Field(default=None, description="OpenAI-compatible base URL (…/v1 or the server root)")
    model_name: str | None = Field(default=None, description="model id; default: the first of GET /v1/models")
    api_key: str | None = Field(default=None, exclude=True)
    prompt_format: PromptFormat = PromptFormat.react
    split: SplitChoice = SplitChoice.test
    task_ids: list[str] | None = None
    limit: int | None = Field(default=None, ge=1, description="first N tasks of the selection")
    samples: int = Field(default=1, ge=1)
    max_turns: int | None = Field(default=None, ge=1, description="default: the env's max_turns")
    max_episode_tokens: int | None = Field(default=None, ge=1, description="prompt+completion tokens per episode")
    max_parse_retries: int = Field(default=2, ge=0, description="consecutive unparseable replies tolerated")
    constrain_actions: bool = Field(default=False, description="ReAct: constrain decoding to the env's action forms "
                                                                 "(vLLM structured outputs regex)")
    sampling: Sampling = Field(default_factory=Sampling)
    allow_identical_samples: bool = Field(default=False, description="allow samples > 1 at temperature 0 "
                                                                      "(identical greedy samples)")
    extras: Extras = Extras.auto
    store_prompt_token_ids: bool = True
    concurrency: int = Field(default=8, ge=1, le=100_000)
    model_concurrency: int | None = Field(default=None, ge=1, description="in-flight model calls; default = concurrency")
    env_concurrency: int | None = Field(default=None, ge=1, description="in-flight env calls; default = concurrency")
    model_timeout: float = Field(default=300.0, gt=0)
    env_timeout: float = Field(default=60.0, gt=0)
    model_retries: int = Field(default=3, ge=0, description="retries of one model call on 5xx/timeout/transport")
    max_attempts: int = Field(default=3, ge=1, description="attempts of one episode before it is an infra error")
    retry_backoff: float = Field(default=0.5, ge=0, description="first backoff (s), doubled each retry")
    lease_seconds: float = Field(default=120.0, gt=0)

    @model_validator(mode="after")
    def _check(self) -> JobConfig:
        if self.policy is Policy.model and not self.model:
            raise ValueError("--policy model needs --model URL")
        if (self.policy is Policy.model and self.samples > 1 and self.sampling.temperature == 0
                and not self.allow_identical_samples):
            raise ValueError(f"--samples {self.samples} at temperature 0 gives {self.samples} identical greedy samples "
                             f"of each task, so pass@k would mean nothing: set --temperature (e.g. 0.8, with --seed "
                             f"for a reproducible run), or pass --allow-identical-samples if identical samples are "
                             f"what you want")
        return self

    @property
    def tool_calling(self) -> bool:
        """Native tool calls: the model's replies, or the expert's actions written as tool calls."""
        return self.prompt_format is PromptFormat.tools

    def prompt_format_in_force(self) -> str | None:
        """The prompt format the stored conversations have: always for a model; for the expert only `tools`
        (its default ReAct conversations predate the option, and their runs keep their identity)."""
        return self.prompt_format.value if self.policy is Policy.model or self.tool_calling else None

    def identity(self, env_name: str, model_name: str | None) -> dict[str, Any]:
        return {
            "env": env_name,
            "policy": self.policy.value,
            "model_name": model_name if self.policy is Policy.model else None,
            "prompt_format": self.prompt_format_in_force(),
            "split": self.split.value,
            "task_ids": self.task_ids,
            "limit": self.limit,
            "samples": self.samples,
            "max_turns": self.max_turns,
            "max_episode_tokens": self.max_episode_tokens,
            "max_parse_retries": self.max_parse_retries,
            "constrain_actions": self.constrain_actions if self.policy is Policy.model else None,
            "sampling": self.sampling.identity() if self.policy is Policy.model else None,
        }

    def config_hash(self, env_name: str, model_name: str | None) -> str:
        blob = json.dumps(self.identity(env_name, model_name), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()


def load_job_file(path: Path) -> dict[str, Any]:
    text = path.read_text(encoding="utf-8")
    if path.suffix.lower() == ".toml":
        data = tomllib.loads(text)
    else:
        data = yaml.safe_load(text) or {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: a job file holds a mapping of settings")
    return data


def build_job(file: Path | None, overrides: dict[str, Any], *, sampling_file: Path | None = None,
              sampling: dict[str, Any] | None = None) -> JobConfig:
    """Job file values, then CLI flags that were given (not None) on top. Sampling: the job file's
    `sampling:` table, then the `--sampling-file` (a mapping of `Sampling` keys), then the sampling flags."""
    data = load_job_file(file) if file is not None else {}
    data.update({k: v for k, v in overrides.items() if v is not None})
    if sampling_file is not None or sampling:
        merged = dict(data.get("sampling") or {})
        if sampling_file is not None:
            merged.update(load_job_file(sampling_file))
        merged.update({k: v for k, v in (sampling or {}).items() if v is not None})
        data["sampling"] = merged
    return JobConfig.model_validate(data)


class EnvNotResolved(LookupError):
    pass


def is_url(env: str) -> bool:
    return re.match(r"^https?://", env) is not None


def resolve_env_url(env: str) -> str:
    """A URL is used as is; a name without a hub is looked up in TRAJGYM_ENV_URL_<NAME>."""
    if is_url(env):
        return env.rstrip("/")
    var = "TRAJGYM_ENV_URL_" + re.sub(r"\W", "_", env).upper()
    url = os.environ.get(var)
    if not url:
        raise EnvNotResolved(f"env {env!r} is not a URL and no hub is given: pass --hub URL (or set TRAJGYM_HUB_URL) "
                             f"to resolve it through the registry, or --env http://HOST:PORT of a `trajgym serve {env}` "
                             f"(or export {var})")
    return url.rstrip("/")
