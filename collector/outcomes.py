"""Typed episode outcomes and the collector's internal failure kinds.

Every way an episode ends has one outcome, decided where its cause is known:

* `success` / `failure`: the env ended the episode and said whether the task is solved. What the
  agent's own actions provoke inside the env (an ungradable query, a result too large, a timeout
  of its own query) reaches it as an observation and, at the end, as a failure.
* `truncated`: a turn, token or context limit (the model's context overflowed).
* `policy_error`: no usable action: unparseable replies after the allowed retries, or a model
  reply that cannot be used at all (bad JSON, wrong types, missing fields, a repeatable 4xx).
* `env_error`: the env service failed on its own (an unexpected exception in env code, HTTP 500),
  again after one retry on a fresh session. Stored with the exception text; counted as not solved.
* `infra_error`: env or model unreachable, timeouts, 5xx of the model server, 429: not scored,
  and retried by `--resume`.
"""

from __future__ import annotations

from enum import Enum


class Outcome(str, Enum):
    success = "success"            # the env said the task is solved
    failure = "failure"            # the env ended the episode without success
    truncated = "truncated"        # turn, token or context limit
    policy_error = "policy_error"  # no usable action: unparseable replies, or an unusable model reply
    env_error = "env_error"        # the env service's own bug (500): counted as not solved
    infra_error = "infra_error"    # env or model unreachable, model 5xx, timeout, 429: never scored

    @property
    def scored(self) -> bool:
        return self is not Outcome.infra_error


class InfraFailure(Exception):
    """One attempt of an episode hit an infrastructure failure; the attempt is discarded."""


class EnvFault(Exception):
    """One attempt of an episode hit an env bug (the service answered 500); retried once on a fresh session."""
