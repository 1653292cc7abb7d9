"""Live counters of one collector process (read by the progress bar and the summary)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field


@dataclass
class Stats:
    total: int = 0
    already_done: int = 0
    done: int = 0
    success: int = 0
    scored: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)
    turns: int = 0
    tokens: int = 0
    infra_retries: int = 0
    env_retries: int = 0
    started: float = field(default_factory=time.monotonic)

    def record(self, outcome: str, success: bool | None) -> None:
        self.done += 1
        self.outcomes[outcome] = self.outcomes.get(outcome, 0) + 1
        if outcome != "infra_error":
            self.scored += 1
            self.success += int(bool(success))

    @property
    def elapsed(self) -> float:
        return max(time.monotonic() - self.started, 1e-9)

    @property
    def errors(self) -> int:
        return (self.outcomes.get("infra_error", 0) + self.outcomes.get("env_error", 0)
                + self.outcomes.get("policy_error", 0))

    @property
    def success_rate(self) -> float | None:
        return self.success / self.scored if self.scored else None
