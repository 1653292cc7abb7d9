"""Typed episode outcomes and the collector's internal failure kinds."""

from __future__ import annotations

from enum import Enum


class Outcome(str, Enum):
    success = "success"            # the env said the task is solved
    failure = "failure"            # the env ended the episode without success
    truncated = "truncated"        # turn, token or context limit
    policy_error = "policy_error"  # no usable action after the allowed retries
    infra_error = "infra_error"    # env or model unreachable, 5xx, timeout: never scored

    @property
    def scored(self) -> bool:
        return self is not Outcome.infra_error


class InfraFailure(Exception):
    """One attempt of an episode hit an infrastructure failure; the attempt is discarded."""
