"""Request and response bodies of the hub API, and the validation of names and replica URLs."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from enum import Enum
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from pydantic import BaseModel, Field, field_validator

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
MAX_REPLICAS_PER_REQUEST = 64


def normalize_base_url(url: str) -> str:
    """`http(s)://host[:port][/prefix]` without trailing slash; refuses credentials, query, fragment."""
    if not isinstance(url, str) or not url.strip() or len(url) > 2000:
        raise ValueError("a replica URL is a non-empty string of at most 2000 characters")
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https"):
        raise ValueError(f"{url!r}: the scheme must be http or https")
    if not parts.hostname:
        raise ValueError(f"{url!r}: no host")
    if parts.username or parts.password:
        raise ValueError(f"{url!r}: credentials in the URL are not allowed")
    if parts.query or parts.fragment:
        raise ValueError(f"{url!r}: a base URL has no query or fragment")
    try:
        port = parts.port
    except ValueError as err:
        raise ValueError(f"{url!r}: bad port") from err
    if port == 0:
        raise ValueError(f"{url!r}: bad port")
    if any(c.isspace() for c in url.strip()):
        raise ValueError(f"{url!r}: whitespace in URL")
    return urlunsplit((parts.scheme, parts.netloc.lower(), parts.path.rstrip("/"), "", ""))


def check_name(name: str) -> str:
    if not NAME_RE.match(name):
        raise ValueError(f"{name!r}: env names are 1-100 characters of letters, digits, '.', '_', '-' (not first)")
    return name


class ReplicaStatus(str, Enum):
    unknown = "unknown"
    up = "up"
    down = "down"


class RegisterEnv(BaseModel):
    """POST /v1/envs: the hub reads each replica's GET /v1/info; `name` defaults to the env's own name."""

    urls: list[str] = Field(min_length=1, max_length=MAX_REPLICAS_PER_REQUEST, description="base URLs of the replicas")
    name: str | None = Field(default=None, description="registry name (default: the name in /v1/info)")
    meta: dict[str, Any] = Field(default_factory=dict, description="free-form labels (owner, machine, ...)")
    replace_stale: bool = Field(default=False, description="if the name is taken by another env or version with no "
                                                           "replica up (an upgrade), replace that registration")

    @field_validator("urls")
    @classmethod
    def _urls(cls, urls: list[str]) -> list[str]:
        out = [normalize_base_url(u) for u in urls]
        if len(set(out)) != len(out):
            raise ValueError("duplicate replica URLs")
        return out

    @field_validator("name")
    @classmethod
    def _name(cls, name: str | None) -> str | None:
        return None if name is None else check_name(name)

    @field_validator("meta")
    @classmethod
    def _meta(cls, meta: dict[str, Any]) -> dict[str, Any]:
        if len(str(meta)) > 10_000:
            raise ValueError("meta is limited to 10,000 characters")
        return meta


class AddReplica(BaseModel):
    """POST /v1/envs/{name}/replicas: the hub probes `url` first. `replace`: an entry of the same URL (a
    restarted service's earlier life) is replaced by a fresh one instead of a 409."""

    url: str
    replace: bool = Field(default=False, description="replace an existing entry of the same URL")

    @field_validator("url")
    @classmethod
    def _url(cls, url: str) -> str:
        return normalize_base_url(url)


def _utc(value: datetime | None) -> datetime | None:
    if value is not None and value.tzinfo is None:  # SQLite returns naive datetimes
        return value.replace(tzinfo=UTC)
    return value


class Replica(BaseModel):
    id: int
    url: str
    status: ReplicaStatus
    verified: bool = Field(description="its /v1/info matched the env's name and version")
    sessions: int | None = Field(default=None, description="open sessions at the last health check")
    max_sessions: int | None = None
    failures: int = Field(default=0, description="consecutive failed health checks")
    last_error: str | None = None
    last_checked_at: datetime | None = None
    last_up_at: datetime | None = None
    created_at: datetime

    @field_validator("last_checked_at", "last_up_at", "created_at")
    @classmethod
    def _tz(cls, value: datetime | None) -> datetime | None:
        return _utc(value)

    @property
    def healthy(self) -> bool:
        return self.status is ReplicaStatus.up


class EnvRecord(BaseModel):
    name: str
    env_name: str = Field(description="the name the env reports in /v1/info")
    version: str
    description: str
    info: dict[str, Any] = Field(description="the env's GET /v1/info at registration")
    meta: dict[str, Any] = Field(default_factory=dict)
    created_at: datetime
    updated_at: datetime
    replicas: list[Replica]

    @field_validator("created_at", "updated_at")
    @classmethod
    def _tz(cls, value: datetime) -> datetime | None:
        return _utc(value)

    @property
    def healthy_replicas(self) -> list[Replica]:
        return [r for r in self.replicas if r.healthy]


class EnvList(BaseModel):
    envs: list[EnvRecord]


class Deleted(BaseModel):
    name: str
    replica_id: int | None = None
    deleted: bool = True


class HubHealth(BaseModel):
    status: str
    envs: int | None = None
