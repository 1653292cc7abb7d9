"""The job: what a collection run is (pydantic), loaded from CLI flags and/or a YAML/TOML file.

`JobConfig.identity()` is the part that defines the run's data (env, tasks, samples,
policy, prompt format, model name, sampling, limits); its SHA-256 is the config hash
stored with the run and checked on `--resume`. Endpoints, concurrency, timeouts and
retry limits are operational: they may differ between machines sharing one run.
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


class Sampling(BaseModel):
    model_config = ConfigDict(extra="forbid")

    temperature: float = Field(default=0.0, ge=0.0, le=5.0)
    top_p: float = Field(default=1.0, gt=0.0, le=1.0)
    max_tokens: int = Field(default=512, ge=1, description="completion tokens per model call")
    seed: int | None = None
    stop: list[str] | None = None
    extra_body: dict[str, Any] | None = Field(default=None, description="extra request fields, e.g. vLLM's structured_outputs")


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
        return self

    def identity(self, env_name: str, model_name: str | None) -> dict[str, Any]:
        return {
            "env": env_name,
            "policy": self.policy.value,
            "model_name": model_name if self.policy is Policy.model else None,
            "prompt_format": self.prompt_format.value if self.policy is Policy.model else None,
            "split": self.split.value,
            "task_ids": self.task_ids,
            "limit": self.limit,
            "samples": self.samples,
            "max_turns": self.max_turns,
            "max_episode_tokens": self.max_episode_tokens,
            "max_parse_retries": self.max_parse_retries,
            "constrain_actions": self.constrain_actions if self.policy is Policy.model else None,
            "sampling": self.sampling.model_dump() if self.policy is Policy.model else None,
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


def build_job(file: Path | None, overrides: dict[str, Any]) -> JobConfig:
    """Job file values, then CLI flags that were given (not None) on top."""
    data = load_job_file(file) if file is not None else {}
    data.update({k: v for k, v in overrides.items() if v is not None})
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
