"""Curation filters on a store with known episodes (written through the store's own API)."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from collector.export import Curation, select
from tests.support.synthetic_store import EpisodeSpec, build_run, react_messages
from store import Store
from store.records import TurnRecord

SYS = "You are an agent."


def _ok(target: int, adds: list[int]) -> list[TurnRecord]:
    """A clean episode: add steps then finish[target]."""
    steps: list[tuple[str, str | None, str]] = []
    value = 0
    for a in adds:
        value += a
        steps.append((f"Thought: add.\nAction: add[{a}]", f"add[{a}]", f"Observation: Current value: {value}."))
    steps.append((f"Action: finish[{target}]", f"finish[{target}]", "Observation: Correct!"))
    return react_messages(SYS, f"Task: Reach {target}.\nObservation: Current value: 0.", steps)


def _refused_then_ok(target: int) -> list[TurnRecord]:
    return react_messages(SYS, f"Task: Reach {target}.", [
        ("I am not sure.", None, "Your reply has no 'Action:' line."),
        (f"Action: add[{target}]", f"add[{target}]", f"Observation: Current value: {target}."),
        (f"Action: finish[{target}]", f"finish[{target}]", "Observation: Correct!"),
    ])


def _tokens_episode(prompt: int, completion: int) -> list[TurnRecord]:
    msgs = _ok(3, [3])
    for m in msgs:
        if m.role == "assistant":
            m.prompt_tokens, m.completion_tokens = prompt, completion
    msgs[2].prompt_tokens = 10  # the first call is smaller: the largest call counts
    return msgs


# (task, sample) -> spec; the expected sets of every test below are written by hand from this table.
KNOWN: list[EpisodeSpec] = [
    # t1 (train): 3 successes of 4
    EpisodeSpec("t1", sample=0, messages=_ok(3, [3]), reward=1.0),
    EpisodeSpec("t1", sample=1, messages=_ok(3, [3]), reward=1.0),                     # same actions as s0
    EpisodeSpec("t1", sample=2, outcome="failure", reward=0.0, success=False, messages=_ok(4, [3])[:4]),
    EpisodeSpec("t1", sample=3, messages=_refused_then_ok(3), reward=0.9),             # a refused reply
    # t2 (train): no success
    EpisodeSpec("t2", sample=0, outcome="failure", reward=0.0, success=False, messages=_ok(5, [4])[:4]),
    EpisodeSpec("t2", sample=1, outcome="truncated", reward=0.2, success=False, messages=_ok(5, [1, 1, 1, 1])[:10]),
    EpisodeSpec("t2", sample=2, outcome="policy_error", reward=0.0, success=False,
                messages=react_messages(SYS, "Task: Reach 5.", [("?", None, "no action"), ("??", None, "no action")])),
    EpisodeSpec("t2", sample=3, outcome="infra_error", reward=None, success=None, messages=[]),
    # t3 (dev): 4 successes of 4, two distinct action sequences, one long in tokens
    EpisodeSpec("t3", split="dev", sample=0, messages=_ok(6, [6]), reward=1.0),
    EpisodeSpec("t3", split="dev", sample=1, messages=_ok(6, [3, 3]), reward=0.7),
    EpisodeSpec("t3", split="dev", sample=2, messages=_ok(6, [6]), reward=1.0),
    EpisodeSpec("t3", split="dev", sample=3, messages=_tokens_episode(900, 50), reward=0.5),
    # t4 (test): 1 success; samples 1..3 stay pending (unfinished)
    EpisodeSpec("t4", split="test", sample=0, messages=_ok(2, [2]), reward=1.0),
]


def build_known_store(path: Path) -> Store:
    store = Store(str(path / "known.db"))
    build_run(store, "known", KNOWN, samples=4,
              tasks=[("t1", "train"), ("t2", "train"), ("t3", "dev"), ("t4", "test")])
    return store


@pytest.fixture()
def store(tmp_path: Path) -> Store:
    s = build_known_store(tmp_path)
    yield s
    s.close()


def kept(store: Store, **kw: object) -> set[tuple[str, int]]:
    episodes, _ = select(store, ["known"], Curation(**kw))
    return {(e.task_id, e.sample) for e in episodes}


ALL_SCORED = {("t1", 0), ("t1", 1), ("t1", 2), ("t1", 3), ("t2", 0), ("t2", 1), ("t2", 2), ("t3", 0), ("t3", 1),
              ("t3", 2), ("t3", 3), ("t4", 0)}


def test_default_keeps_every_scored_episode_never_infra_or_unfinished(store: Store) -> None:
    episodes, report = select(store, ["known"], Curation())
    assert {(e.task_id, e.sample) for e in episodes} == ALL_SCORED
    assert report.finished == 13 and report.kept == 12 and report.dropped == {"infra_error": 1}
    assert [e.id for e in episodes] == sorted(e.id for e in episodes)


def test_success_only(store: Store) -> None:
    assert kept(store, success_only=True) == {("t1", 0), ("t1", 1), ("t1", 3), ("t3", 0), ("t3", 1), ("t3", 2),
                                              ("t3", 3), ("t4", 0)}


def test_min_reward(store: Store) -> None:
    assert kept(store, min_reward=0.9) == {("t1", 0), ("t1", 1), ("t1", 3), ("t3", 0), ("t3", 2), ("t4", 0)}
    assert kept(store, min_reward=0.2) - kept(store, min_reward=0.5) == {("t2", 1)}


def test_outcome_types(store: Store) -> None:
    assert kept(store, outcomes=["truncated", "policy_error"]) == {("t2", 1), ("t2", 2)}
    with pytest.raises(ValidationError):
        Curation(outcomes=["infra_error"])


def test_splits(store: Store) -> None:
    assert kept(store, splits=["dev", "test"]) == {("t3", 0), ("t3", 1), ("t3", 2), ("t3", 3), ("t4", 0)}


def test_max_turns(store: Store) -> None:
    # env steps: _ok with one add = 2, t2/s1 truncated = 4 adds (no finish), t3/s1 = 3, refused episode = 2
    assert kept(store, max_turns=2) == ALL_SCORED - {("t2", 1), ("t3", 1)}
    assert kept(store, max_turns=1) == {("t1", 2), ("t2", 0), ("t2", 2)}


def test_max_tokens_uses_largest_call_else_chars(store: Store) -> None:
    # t3/s3 has stored counts: max(10+50, 900+50) = 950; the others have none: ceil(chars / 4)
    assert ("t3", 3) in kept(store, max_tokens=950)
    assert ("t3", 3) not in kept(store, max_tokens=949)
    small = kept(store, max_tokens=40)
    assert ("t3", 3) not in small and ("t2", 2) in small  # the policy_error episode is the shortest text
    assert ("t2", 1) not in small                         # the long truncated one is not


def test_valid_format_drops_refused_replies_and_policy_errors(store: Store) -> None:
    assert kept(store, valid_format=True) == ALL_SCORED - {("t1", 3), ("t2", 2)}


def test_pass_band_counts_all_scored_samples_per_task(store: Store) -> None:
    # successes per task: t1 3, t2 0, t3 4, t4 1 (of 1 scored)
    assert {t for t, _ in kept(store, solved_min=1, solved_max=3)} == {"t1", "t4"}
    # the band is computed before success_only narrows the episodes
    assert kept(store, solved_min=1, solved_max=3, success_only=True) == {("t1", 0), ("t1", 1), ("t1", 3), ("t4", 0)}
    assert {t for t, _ in kept(store, solved_max=0)} == {"t2"}
    with pytest.raises(ValidationError):
        Curation(solved_min=3, solved_max=1)


def test_dedup_identical_action_sequences_per_task(store: Store) -> None:
    _, report = select(store, ["known"], Curation(dedup=True))
    got = kept(store, dedup=True)
    # executed actions, not reply text, are compared: t1 s0 == s1 == s3 (add[3], finish[3]; s0 and s1 tie on
    # reward 1.0, the lower id wins; s3 has 0.9); t3 s0 == s2 (keep s0)
    assert got == ALL_SCORED - {("t1", 1), ("t1", 3), ("t3", 2)}
    assert report.dropped["duplicate"] == 3


def test_best_of_n_per_task(store: Store) -> None:
    assert kept(store, best_of=1) == {("t1", 0), ("t2", 1), ("t3", 0), ("t4", 0)}
    # ties on reward and success go to fewer env steps: t2/s2 (0 steps) before t2/s0 (1 step)
    assert kept(store, best_of=2) == {("t1", 0), ("t1", 1), ("t2", 1), ("t2", 2), ("t3", 0), ("t3", 2), ("t4", 0)}


def test_filters_compose_and_report_each_step(store: Store) -> None:
    episodes, report = select(store, ["known"], Curation(success_only=True, valid_format=True, dedup=True, best_of=1))
    assert {(e.task_id, e.sample) for e in episodes} == {("t1", 0), ("t3", 0), ("t4", 0)}
    assert report.dropped == {"infra_error": 1, "not_success": 4, "invalid_format": 1, "duplicate": 2, "best_of": 2}
    assert report.kept == 3 and report.tasks == 3
    assert report.finished == sum(report.dropped.values()) + report.kept


def test_several_runs_and_unknown_run(store: Store) -> None:
    build_run(store, "second", [EpisodeSpec("t1", messages=_ok(3, [3]))], tasks=[("t1", "train")])
    episodes, _ = select(store, ["known", "second"], Curation(dedup=True))
    assert ("second", "t1") not in {(e.run, e.task_id) for e in episodes}  # same actions as known t1/s0
    episodes, _ = select(store, ["second"], Curation())
    assert [(e.run, e.task_id, e.model) for e in episodes] == [("second", "t1", "test-model")]
    from store import RunNotFound

    with pytest.raises(RunNotFound):
        select(store, ["nope"], Curation())
