"""Pure metric functions over stored episode outcomes (no I/O, no store).

`pass_at_k` is the unbiased estimator of Chen et al. (2021), "Evaluating Large
Language Models Trained on Code": with n samples of a task of which c succeeded,
pass@k = 1 - C(n-c, k) / C(n, k), computed as a running product so that large n
never builds huge binomials. A suite-level pass@k is the mean over tasks that have
at least k scored samples.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field


def pass_at_k(n: int, c: int, k: int) -> float:
    """Probability that at least one of k samples drawn without replacement from n (c correct) is correct."""
    if not 0 <= c <= n:
        raise ValueError(f"need 0 <= c <= n, got n={n}, c={c}")
    if not 1 <= k <= n:
        raise ValueError(f"need 1 <= k <= n, got n={n}, k={k}")
    if n - c < k:
        return 1.0
    # C(n-c, k) / C(n, k) = prod_{i=n-c+1}^{n} (1 - k / i)
    prob_all_fail = 1.0
    for i in range(n - c + 1, n + 1):
        prob_all_fail *= 1.0 - k / i
    return 1.0 - prob_all_fail


def mean_pass_at_k(tasks: Iterable[tuple[int, int]], k: int) -> tuple[float | None, int]:
    """Mean pass@k over tasks given as (n, c); tasks with n < k are skipped. Returns (value, tasks used)."""
    total = 0.0
    used = 0
    for n, c in tasks:
        if n >= k:
            total += pass_at_k(n, c, k)
            used += 1
    return (total / used if used else None), used


def default_ks(max_samples: int) -> list[int]:
    """k values worth reporting for up to `max_samples` samples per task: 1, 2, 4, 8, ... and the maximum."""
    ks: list[int] = []
    k = 1
    while k <= max_samples:
        ks.append(k)
        k *= 2
    if max_samples >= 1 and ks[-1] != max_samples:
        ks.append(max_samples)
    return ks


def ratio(num: float, den: float) -> float | None:
    """num / den, or None when there is nothing to divide by."""
    return num / den if den else None


def mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


def wilson_interval(successes: int, n: int, z: float = 1.959963984540054) -> tuple[float, float] | None:
    """Wilson score interval of a success rate (95 % by default); None for n == 0."""
    if n <= 0:
        return None
    if not 0 <= successes <= n:
        raise ValueError(f"need 0 <= successes <= n, got {successes}/{n}")
    p = successes / n
    z2 = z * z
    den = 1.0 + z2 / n
    centre = (p + z2 / (2 * n)) / den
    half = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / den
    return max(0.0, centre - half), min(1.0, centre + half)


@dataclass(slots=True)
class TaskTally:
    """Counts and sums over the episodes of one task (one env and split), as read from the store."""

    env: str
    split: str
    task_id: str
    scored: int = 0            # done and not infra_error (env errors included, as not solved)
    successes: int = 0
    reward_sum: float = 0.0
    progress_sum: float = 0.0
    progress_n: int = 0        # scored episodes that reported a progress value
    turns_sum: int = 0
    failures: int = 0
    truncated: int = 0
    policy_errors: int = 0
    infra_errors: int = 0
    unfinished: int = 0        # pending or claimed
    env_errors: int = 0        # part of `scored`, never successes


@dataclass(slots=True)
class SplitAggregate:
    env: str
    split: str
    tasks: int = 0
    episodes: int = 0
    successes: int = 0
    success_rate: float | None = None
    success_ci95: tuple[float, float] | None = None
    success_rate_excluding_env_errors: float | None = None
    mean_reward: float | None = None
    mean_progress: float | None = None
    mean_turns: float | None = None
    failures: int = 0
    truncated: int = 0
    policy_errors: int = 0
    env_errors: int = 0
    infra_errors: int = 0
    unfinished: int = 0
    max_samples: int = 0       # largest number of scored samples of one task
    pass_at_k: dict[str, float | None] = field(default_factory=dict)
    pass_at_k_tasks: dict[str, int] = field(default_factory=dict)


def aggregate_split(env: str, split: str, tallies: Iterable[TaskTally], ks: Sequence[int] | None = None) -> SplitAggregate:
    """Scores of one env/split from its task tallies. Scored episodes are the finished ones that are not
    infra errors: env errors are among them, as not solved (reward 0), and `success_rate_excluding_env_errors`
    leaves them out. Infra errors are counted, never in a denominator; means are over scored episodes
    (progress over those that reported one); pass@k (unbiased, mean over tasks with n >= k) is given when
    some task has several scored samples."""
    agg = SplitAggregate(env=env, split=split)
    reward = progress = 0.0
    progress_n = turns = 0
    per_task: list[tuple[int, int]] = []
    for t in tallies:
        agg.tasks += 1
        agg.episodes += t.scored
        agg.successes += t.successes
        reward += t.reward_sum
        progress += t.progress_sum
        progress_n += t.progress_n
        turns += t.turns_sum
        agg.failures += t.failures
        agg.truncated += t.truncated
        agg.policy_errors += t.policy_errors
        agg.env_errors += t.env_errors
        agg.infra_errors += t.infra_errors
        agg.unfinished += t.unfinished
        if t.scored:
            per_task.append((t.scored, t.successes))
    n = agg.episodes
    agg.success_rate = ratio(agg.successes, n)
    agg.success_ci95 = wilson_interval(agg.successes, n)
    agg.success_rate_excluding_env_errors = ratio(agg.successes, n - agg.env_errors)
    agg.mean_reward = ratio(reward, n)
    agg.mean_progress = ratio(progress, progress_n)
    agg.mean_turns = ratio(turns, n)
    agg.max_samples = max((m for m, _ in per_task), default=0)
    if agg.max_samples >= 2:
        for k in ks or default_ks(agg.max_samples):
            value, used = mean_pass_at_k(per_task, k)
            agg.pass_at_k[str(k)] = value
            agg.pass_at_k_tasks[str(k)] = used
    return agg
