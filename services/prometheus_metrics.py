"""Prometheus metrics of one env service, on a registry of its own (several apps can share a process)."""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class ServiceMetrics:
    def __init__(self, env_name: str) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        labels = ["env"]
        self.sessions_open = Gauge("trajgym_sessions_open", "Sessions currently open", labels, registry=self.registry).labels(env_name)
        self.sessions_created = Counter("trajgym_sessions_created", "Sessions created", labels, registry=self.registry).labels(env_name)
        self.sessions_closed = Counter("trajgym_sessions_closed", "Sessions closed, by reason", ["env", "reason"], registry=self.registry)
        self.steps = Counter("trajgym_steps", "Env steps taken", labels, registry=self.registry).labels(env_name)
        self.inline_calls = Counter("trajgym_inline_env_calls", "Env calls (steps, resets, expert) run on the event loop "
                                    "by the step policy, not in a worker thread", labels, registry=self.registry).labels(env_name)
        self.step_latency = Histogram("trajgym_step_latency_seconds", "Env step latency (inside the service)", labels,
                                      buckets=LATENCY_BUCKETS, registry=self.registry).labels(env_name)
        self.channels_open = Gauge("trajgym_channels_open", "Session channels (WS /v1/channel) open", labels,
                                   registry=self.registry).labels(env_name)
        self.channel_requests = Counter("trajgym_channel_requests", "Requests received on session channels", labels,
                                        registry=self.registry).labels(env_name)
        self.errors = Counter("trajgym_errors", "Error responses, by HTTP status", ["env", "status"], registry=self.registry)
        self.env_name = env_name
        self._closed_by_reason: dict[str, Any] = {}

    def closed(self, reason: str) -> None:
        counter = self._closed_by_reason.get(reason)
        if counter is None:  # a handful of reasons: closed, expired, shutdown, evicted
            counter = self._closed_by_reason[reason] = self.sessions_closed.labels(self.env_name, reason)
        counter.inc()
        self.sessions_open.dec()

    def error(self, status: int) -> None:
        self.errors.labels(self.env_name, str(status)).inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)
