"""Curation: which finished episodes become training rows (the AgentInstruct / FireAct / AgentGym recipe).

Order of application (each step's drop count is reported):
1. per-episode filters: infra errors and env errors (the env service failed: an incomplete
   episode) never pass; split, outcome types, success only,
   reward ≥ threshold, max env turns, max tokens, valid format only;
2. per-task pass band: tasks whose number of successes among their scored samples
   (all scored samples of the selected runs, before step 1) lies in [solved_min, solved_max];
3. dedup: one episode per (env, task, identical executed action sequence);
4. best-of-N: the N best remaining episodes per (env, task).
"Best" everywhere = highest reward, then success, then fewest turns, then lowest id.

Tokens of an episode = the largest prompt+completion count of any of its model calls
(its final context length); for episodes without stored counts (expert runs) it is
estimated as characters / 4, rounded up.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from pydantic import BaseModel, ConfigDict, Field, model_validator

from collector.export.source import (
    EpisodeMeta,
    TurnFeatures,
    action_sequences,
    turn_features,
)
from store.repo import Store

SCORED_OUTCOMES = ("success", "failure", "truncated", "policy_error")


class Curation(BaseModel):
    """Filters of one export; the defaults keep every scored, finished episode."""

    model_config = ConfigDict(extra="forbid")

    splits: list[str] | None = Field(default=None, description="env splits to keep (default: all)")
    outcomes: list[str] | None = Field(default=None, description="outcome types to keep (default: all scored)")
    success_only: bool = False
    min_reward: float | None = None
    max_turns: int | None = Field(default=None, ge=0)
    max_tokens: int | None = Field(default=None, ge=1)
    valid_format: bool = Field(default=False, description="drop episodes with any refused (unparseable/invalid) reply")
    solved_min: int | None = Field(default=None, ge=0, description="pass band: at least this many successes per task")
    solved_max: int | None = Field(default=None, ge=0, description="pass band: at most this many successes per task")
    dedup: bool = Field(default=False, description="one episode per identical action sequence per task")
    best_of: int | None = Field(default=None, ge=1, description="keep the N best episodes per task")

    @model_validator(mode="after")
    def _check(self) -> Curation:
        if self.outcomes is not None:
            bad = [o for o in self.outcomes if o not in SCORED_OUTCOMES]
            if bad:
                raise ValueError(f"unknown or unexportable outcomes {bad}; choose from {', '.join(SCORED_OUTCOMES)}")
        if self.solved_min is not None and self.solved_max is not None and self.solved_min > self.solved_max:
            raise ValueError("solved_min must be <= solved_max")
        return self

    @property
    def needs_features(self) -> bool:
        return self.valid_format or self.max_tokens is not None


class CurationReport(BaseModel):
    """How many episodes each step removed, and how many remain."""

    finished: int
    dropped: dict[str, int]
    kept: int
    tasks: int


def rank_key(e: EpisodeMeta) -> tuple[float, int, int, int]:
    reward = e.reward if e.reward is not None else float("-inf")
    return (-reward, -int(e.success), e.turns, e.id)


def episode_tokens(e: EpisodeMeta, f: TurnFeatures | None) -> int:
    if f is not None and f.context_tokens is not None:
        return f.context_tokens
    chars = f.chars if f is not None else 0
    return -(-chars // 4)


def curate(store: Store, run_ids: Sequence[int], episodes: Sequence[EpisodeMeta],
           cur: Curation) -> tuple[list[EpisodeMeta], CurationReport]:
    """Apply the curation to the finished episodes of the runs; returns the kept ones in episode-id order."""
    dropped: Counter[str] = Counter({"infra_error": 0})
    active = {"split": cur.splits is not None, "outcome": cur.outcomes is not None, "not_success": cur.success_only,
              "min_reward": cur.min_reward is not None, "max_turns": cur.max_turns is not None,
              "max_tokens": cur.max_tokens is not None, "invalid_format": cur.valid_format,
              "pass_band": cur.solved_min is not None or cur.solved_max is not None, "duplicate": cur.dedup,
              "best_of": cur.best_of is not None}
    dropped.update({k: 0 for k, on in active.items() if on})
    features = turn_features(store, run_ids) if cur.needs_features else {}
    outcomes = set(cur.outcomes or SCORED_OUTCOMES)
    splits = set(cur.splits) if cur.splits is not None else None

    def keep(e: EpisodeMeta) -> str | None:
        if e.outcome == "infra_error":
            return "infra_error"
        if e.outcome == "env_error":
            return "env_error"
        if splits is not None and e.split not in splits:
            return "split"
        if e.outcome not in outcomes:
            return "outcome"
        if cur.success_only and not e.success:
            return "not_success"
        if cur.min_reward is not None and (e.reward is None or e.reward < cur.min_reward):
            return "min_reward"
        if cur.max_turns is not None and e.turns > cur.max_turns:
            return "max_turns"
        if cur.max_tokens is not None and episode_tokens(e, features.get(e.id)) > cur.max_tokens:
            return "max_tokens"
        if cur.valid_format and (e.outcome == "policy_error" or
                                 (e.id in features and features[e.id].feedback_turns > 0)):
            return "invalid_format"
        return None

    kept: list[EpisodeMeta] = []
    for e in episodes:
        reason = keep(e)
        if reason is None:
            kept.append(e)
        else:
            dropped[reason] += 1

    if cur.solved_min is not None or cur.solved_max is not None:
        solved: Counter[tuple[str, str]] = Counter()
        for e in episodes:
            if e.outcome != "infra_error" and e.success:
                solved[(e.env, e.task_id)] += 1
        lo = cur.solved_min if cur.solved_min is not None else 0
        hi = cur.solved_max if cur.solved_max is not None else 1 << 62
        before = len(kept)
        kept = [e for e in kept if lo <= solved[(e.env, e.task_id)] <= hi]
        dropped["pass_band"] += before - len(kept)

    if cur.dedup:
        seqs = action_sequences(store, run_ids)
        seen: set[tuple[str, str, tuple[str, ...]]] = set()
        survivors: list[EpisodeMeta] = []
        for e in sorted(kept, key=rank_key):
            key = (e.env, e.task_id, seqs.get(e.id, ()))
            if key in seen:
                dropped["duplicate"] += 1
                continue
            seen.add(key)
            survivors.append(e)
        kept = sorted(survivors, key=lambda e: e.id)

    if cur.best_of is not None:
        taken: Counter[tuple[str, str]] = Counter()
        survivors = []
        for e in sorted(kept, key=rank_key):
            k = (e.env, e.task_id)
            if taken[k] >= cur.best_of:
                dropped["best_of"] += 1
                continue
            taken[k] += 1
            survivors.append(e)
        kept = sorted(survivors, key=lambda e: e.id)

    report = CurationReport(finished=len(episodes), dropped=dict(sorted(dropped.items())), kept=len(kept),
                            tasks=len({(e.env, e.task_id) for e in kept}))
    return kept, report
