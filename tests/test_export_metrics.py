"""Pure metric functions against closed forms and hand computations."""

from __future__ import annotations

import math

import pytest

from store.pass_at_k import (
    TaskTally,
    aggregate_split,
    default_ks,
    mean_pass_at_k,
    pass_at_k,
    ratio,
    wilson_interval,
)


@pytest.mark.parametrize("n", range(1, 13))
def test_pass_at_k_equals_closed_form(n: int) -> None:
    for c in range(n + 1):
        for k in range(1, n + 1):
            closed = 1.0 - math.comb(n - c, k) / math.comb(n, k)
            assert pass_at_k(n, c, k) == pytest.approx(closed, abs=1e-12), (n, c, k)


def test_pass_at_k_edges_and_large_n() -> None:
    assert pass_at_k(8, 0, 3) == 0.0
    assert pass_at_k(8, 8, 1) == 1.0
    assert pass_at_k(8, 2, 1) == pytest.approx(2 / 8)          # pass@1 is the per-task success fraction
    assert pass_at_k(8, 6, 3) == 1.0                           # fewer failures than draws: always solved
    # large n stays exact where binomials are huge
    assert pass_at_k(1000, 10, 100) == pytest.approx(1 - math.comb(990, 100) / math.comb(1000, 100), rel=1e-9)
    for bad in ((3, 4, 1), (3, -1, 1), (3, 1, 0), (3, 1, 4)):
        with pytest.raises(ValueError):
            pass_at_k(*bad)


def test_mean_pass_at_k_skips_tasks_with_too_few_samples() -> None:
    tasks = [(4, 2), (2, 1), (1, 1)]
    assert mean_pass_at_k(tasks, 1) == (pytest.approx((0.5 + 0.5 + 1.0) / 3), 3)
    assert mean_pass_at_k(tasks, 2) == (pytest.approx((5 / 6 + 1.0) / 2), 2)
    assert mean_pass_at_k(tasks, 4) == (pytest.approx(1.0), 1)
    assert mean_pass_at_k(tasks, 5) == (None, 0)


def test_default_ks_and_ratio() -> None:
    assert default_ks(1) == [1]
    assert default_ks(8) == [1, 2, 4, 8]
    assert default_ks(10) == [1, 2, 4, 8, 10]
    assert ratio(1, 0) is None and ratio(3, 4) == 0.75


def test_wilson_interval_hand_computed() -> None:
    z = 1.959963984540054
    n, p = 10, 0.5
    centre = (p + z * z / 20) / (1 + z * z / 10)
    half = z * math.sqrt(p * (1 - p) / n + z * z / 400) / (1 + z * z / 10)
    lo, hi = wilson_interval(5, 10)  # type: ignore[misc]
    assert (lo, hi) == (pytest.approx(centre - half), pytest.approx(centre + half))
    assert lo == pytest.approx(0.2366, abs=1e-4) and hi == pytest.approx(0.7634, abs=1e-4)
    assert wilson_interval(0, 0) is None
    lo0, hi0 = wilson_interval(0, 5)  # type: ignore[misc]
    assert lo0 == 0.0 and 0 < hi0 < 1


def test_aggregate_split_by_hand() -> None:
    tallies = [
        # task a: 4 scored (2 successes), 1 infra error; rewards 1, .5, 1, 0; progress known for 2 episodes
        TaskTally("e", "train", "a", scored=4, successes=2, reward_sum=2.5, progress_sum=0.75, progress_n=2,
                  turns_sum=14, failures=1, truncated=1, infra_errors=1),
        # task b: 2 scored (1 success), 1 unfinished
        TaskTally("e", "train", "b", scored=2, successes=1, reward_sum=1.0, progress_sum=1.0, progress_n=1,
                  turns_sum=5, policy_errors=1, unfinished=1),
    ]
    a = aggregate_split("e", "train", tallies)
    assert (a.tasks, a.episodes, a.successes) == (2, 6, 3)
    assert a.success_rate == pytest.approx(3 / 6)              # the infra error is not in the denominator
    assert a.mean_reward == pytest.approx(3.5 / 6)
    assert a.mean_progress == pytest.approx(1.75 / 3)          # over episodes that reported progress
    assert a.mean_turns == pytest.approx(19 / 6)
    assert (a.failures, a.truncated, a.policy_errors, a.infra_errors, a.unfinished) == (1, 1, 1, 1, 1)
    assert a.max_samples == 4
    assert a.pass_at_k == {"1": pytest.approx(0.5), "2": pytest.approx((5 / 6 + 1) / 2), "4": pytest.approx(1.0)}
    assert a.pass_at_k_tasks == {"1": 2, "2": 2, "4": 1}


def test_aggregate_single_sample_has_no_pass_at_k_and_empty_split_has_none() -> None:
    one = aggregate_split("e", "test", [TaskTally("e", "test", "a", scored=1, successes=1, reward_sum=1.0)])
    assert one.pass_at_k == {} and one.success_rate == 1.0
    empty = aggregate_split("e", "test", [TaskTally("e", "test", "a", infra_errors=2)])
    assert empty.episodes == 0 and empty.success_rate is None and empty.mean_reward is None
    assert empty.infra_errors == 2 and empty.success_ci95 is None
