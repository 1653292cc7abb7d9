"""Where env code runs: on the event loop (inline) or in a worker thread, decided per operation.

A hop to a worker thread costs more than a cheap env step itself (on two cores, about half the
service's throughput: BENCHMARKS.md), but a step that runs on the event loop stalls every other
request while it runs. Three policies (`Env.step_policy`, or `trajgym serve --step-policy`):

- ``thread``: always in a worker thread (the strict guarantee; the SQL env's steps, which wait on
  other processes, always run there);
- ``inline``: always on the loop (an env that declares its steps trivial);
- ``adaptive`` (the default): an operation (step, reset, expert) starts in threads; once its last
  `promote_after` calls there were each cheap, it runs inline; a slow inline call sends it back to
  threads, and the run of cheap calls it needs to come back doubles (up to `max_promote_after`). So a
  cheap env runs at the loop's speed, and an env whose calls turn slow (a large catalogue, a hostile
  query) stalls the loop for at most a call or two each time it is demoted, ever more rarely.

What counts is the call's own cost, not the machine's load. A call in a thread is cheap when its
CPU time (`time.thread_time`) is under `cheap_s` and its wall time under `block_s` (a call that waits
on something for longer is not cheap however little CPU it uses; below that, a thread's wall time
says more about the GIL and the scheduler than about the env). An inline call is timed by the wall
clock alone (a CPU clock costs more than a cheap step's own work), and it is slow when its wall time
passes `slow_s` on `slow_streak` calls in a row: one long wall time alone is as likely the scheduler
preempting the process as the env being slow, and a thread would not help with that.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, TypeVar

T = TypeVar("T")


class StepPolicyName(str, Enum):
    adaptive = "adaptive"
    inline = "inline"
    thread = "thread"


@dataclass
class AdaptiveRule:
    """The thresholds of the adaptive policy (seconds, and counts of consecutive calls)."""

    cheap_s: float = 0.0005
    slow_s: float = 0.002
    block_s: float = 0.02
    slow_streak: int = 3
    promote_after: int = 64
    max_promote_after: int = 4096


@dataclass
class OperationPlace:
    """Where one kind of env call (e.g. `step`) runs now, and the evidence for it."""

    policy: StepPolicyName
    rule: AdaptiveRule = field(default_factory=AdaptiveRule)
    inline: bool = False
    cheap_run: int = 0
    slow_run: int = 0
    needed: int = 0
    demotions: int = 0

    def __post_init__(self) -> None:
        self.inline = self.policy is StepPolicyName.inline
        self.needed = self.rule.promote_after

    def measured(self, wall: float, cpu: float, ran_inline: bool) -> None:
        """Record one call's own wall time (and CPU time, for a call in a thread); promote or demote the
        operation (adaptive only)."""
        if self.policy is not StepPolicyName.adaptive:
            return
        rule = self.rule
        if ran_inline:
            self.slow_run = self.slow_run + 1 if wall > rule.slow_s else 0
            if self.slow_run >= rule.slow_streak:
                self.inline = False
                self.cheap_run = self.slow_run = 0
                self.demotions += 1
                self.needed = min(self.needed * 2, rule.max_promote_after)
            return
        if cpu < rule.cheap_s and wall < rule.block_s:
            self.cheap_run += 1
            if self.cheap_run >= self.needed:
                self.inline = True
        else:
            self.cheap_run = 0


class StepPlacer:
    """One `OperationPlace` per operation name, created on first use, for one service."""

    def __init__(self, policy: StepPolicyName, rule: AdaptiveRule | None = None) -> None:
        self.policy = policy
        self.rule = rule or AdaptiveRule()
        self._places: dict[str, OperationPlace] = {}

    def place(self, operation: str) -> OperationPlace:
        place = self._places.get(operation)
        if place is None:
            place = self._places[operation] = OperationPlace(self.policy, self.rule)
        return place

    def snapshot(self) -> dict[str, dict[str, Any]]:
        """Where each operation runs now (for `/v1/info`-like diagnostics and tests)."""
        return {name: {"inline": p.inline, "demotions": p.demotions, "cheap_run": p.cheap_run, "needed": p.needed}
                for name, p in self._places.items()}


def timed(fn: Callable[..., T], *args: Any) -> tuple[T, float, float]:
    """Call `fn(*args)` (in a worker thread): its result, wall time and CPU time (what the policy learns from)."""
    wall, cpu = time.perf_counter(), time.thread_time()
    result = fn(*args)
    return result, time.perf_counter() - wall, time.thread_time() - cpu


def timed_inline(fn: Callable[..., T], *args: Any) -> tuple[T, float]:
    """Call `fn(*args)` on the loop: its result and wall time."""
    started = time.perf_counter()
    result = fn(*args)
    return result, time.perf_counter() - started


def policy_of(env_cls: type, override: StepPolicyName | None = None) -> StepPolicyName:
    """The policy for `env_cls`: the override (`--step-policy`), else the env's declaration.

    Envs whose steps wait on other processes (`long_steps`) always run in threads: inline, such a
    step would stall the loop for as long as the other process takes."""
    if getattr(env_cls, "long_steps", False):
        return StepPolicyName.thread
    if override is not None:
        return override
    if not getattr(env_cls, "step_in_thread", True):
        return StepPolicyName.inline
    return StepPolicyName(getattr(env_cls, "step_policy", StepPolicyName.adaptive))
