"""Scores of runs per env and split, from the stored episodes alone (no re-running).

One grouped SQL statement reads per-task tallies (scored samples, successes, sums of
reward/progress/turns, outcome counts); `store.pass_at_k` turns them into split
scores: success rate (with a 95 % Wilson interval), mean reward, mean progress, mean
turns, and pass@k (unbiased estimator, mean over tasks with at least k scored
samples) when some task has several samples. Denominators: `episodes` = finished
episodes that are not infra errors. Env errors (the env service's own bugs) are in it and
count as not solved, with reward 0; `success_rate_excluding_env_errors` is the rate over
`episodes - env_errors`. Infra errors are counted but excluded from every denominator;
pending/claimed episodes are reported and not scored. `eval_payload` is the JSON of
`trajgym eval --json`: per run, per env and split, at least `success_rate`,
`success_rate_excluding_env_errors`, `mean_reward`, `episodes`, `env_errors`, `infra_errors`.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import groupby
from typing import Any

from pydantic import BaseModel
from sqlalchemy import case, func, select

from store.pass_at_k import TaskTally, aggregate_split
from store.models import Episode
from store.repo import RunNotFound, Store


class SplitScore(BaseModel):
    env: str
    split: str
    episodes: int            # scored episodes (done, not infra_error; env errors included as not solved)
    successes: int
    success_rate: float | None                       # successes / episodes
    success_rate_excluding_env_errors: float | None = None  # successes / (episodes - env_errors)
    mean_reward: float | None
    mean_progress: float | None
    mean_turns: float | None
    failures: int
    truncated: int
    policy_errors: int
    env_errors: int = 0      # in `episodes`, never successes
    infra_errors: int        # excluded from the denominators above
    unfinished: int          # pending or claimed
    tasks: int = 0
    success_ci95: tuple[float, float] | None = None
    max_samples: int = 0     # most scored samples of one task
    pass_at_k: dict[str, float | None] = {}
    pass_at_k_tasks: dict[str, int] = {}


class RunScores(BaseModel):
    run: str
    run_id: int
    env: str
    model: str | None
    policy: str
    prompt_format: str
    modes: dict[str, str] = {}  # the env's named modes the run was collected under (`run_modes`)
    scores: list[SplitScore]


# Runs stored before the env's modes were recorded were graded by trajgym's earlier graders (the ones
# the `lenient` modes keep today), not the published ones: they show as this, never as the default.
LEGACY_MODES: dict[str, str] = {"grading": "legacy"}


def run_modes(run: dict[str, Any]) -> dict[str, str]:
    """The env modes of a stored run, from its provenance; `LEGACY_MODES` for a run stored before modes were."""
    prov = run.get("provenance")
    env = prov.get("env") if isinstance(prov, dict) else None
    modes = env.get("modes") if isinstance(env, dict) else None
    if isinstance(modes, dict):
        return {str(k): str(v) for k, v in sorted(modes.items())}
    return dict(LEGACY_MODES)


def modes_label(modes: dict[str, str]) -> str:
    return ", ".join(f"{k}={v}" for k, v in sorted(modes.items())) or "default"


def task_tallies(store: Store, run_id: int | Sequence[int]) -> list[TaskTally]:
    """Per (env, split, task) counts and sums over the episodes of one run (or several pooled together),
    ordered by env, split, task."""
    run_ids = [run_id] if isinstance(run_id, int) else list(run_id)
    done = Episode.status == "done"
    scored = done & (Episode.outcome != "infra_error")

    def count(cond: Any) -> Any:
        return func.sum(case((cond, 1), else_=0))

    stmt = (select(
        Episode.env, Episode.split, Episode.task_id,
        count(scored), count(scored & (Episode.success == True)),  # noqa: E712
        func.sum(case((scored, func.coalesce(Episode.reward, 0.0)), else_=0.0)),
        func.sum(case((scored & Episode.progress.is_not(None), Episode.progress), else_=0.0)),
        count(scored & Episode.progress.is_not(None)),
        func.sum(case((scored, func.coalesce(Episode.turns, 0)), else_=0)),
        count(done & (Episode.outcome == "failure")), count(done & (Episode.outcome == "truncated")),
        count(done & (Episode.outcome == "policy_error")), count(done & (Episode.outcome == "infra_error")),
        count(Episode.status != "done"), count(done & (Episode.outcome == "env_error")),
    ).where(Episode.run_id.in_(run_ids)).group_by(Episode.env, Episode.split, Episode.task_id)
        .order_by(Episode.env, Episode.split, Episode.task_id))
    with store.engine.begin() as conn:
        return [TaskTally(env=env, split=split, task_id=task, scored=int(n or 0), successes=int(c or 0),
                          reward_sum=float(r or 0.0), progress_sum=float(p or 0.0), progress_n=int(pn or 0),
                          turns_sum=int(t or 0), failures=int(f or 0), truncated=int(tr or 0),
                          policy_errors=int(pe or 0), infra_errors=int(ie or 0), unfinished=int(u or 0),
                          env_errors=int(ee or 0))
                for env, split, task, n, c, r, p, pn, t, f, tr, pe, ie, u, ee in conn.execute(stmt)]


def score_tallies(tallies: Sequence[TaskTally], ks: Sequence[int] | None = None) -> list[SplitScore]:
    out = []
    for (env, split), group in groupby(tallies, key=lambda t: (t.env, t.split)):
        a = aggregate_split(env, split, list(group), ks)
        out.append(SplitScore(
            env=env, split=split, episodes=a.episodes, successes=a.successes, success_rate=a.success_rate,
            success_rate_excluding_env_errors=a.success_rate_excluding_env_errors, mean_reward=a.mean_reward,
            mean_progress=a.mean_progress, mean_turns=a.mean_turns, failures=a.failures,
            truncated=a.truncated, policy_errors=a.policy_errors, env_errors=a.env_errors, infra_errors=a.infra_errors,
            unfinished=a.unfinished, tasks=a.tasks, success_ci95=a.success_ci95, max_samples=a.max_samples,
            pass_at_k=a.pass_at_k, pass_at_k_tasks=a.pass_at_k_tasks))
    return out


def score_run(store: Store, run_id: int, ks: Sequence[int] | None = None) -> list[SplitScore]:
    return score_tallies(task_tallies(store, run_id), ks)


def score_runs(store: Store, names: Sequence[str], ks: Sequence[int] | None = None) -> list[RunScores]:
    """Scores of several runs by name (RunNotFound for an unknown one), in the given order."""
    out = []
    for name in names:
        r = store.get_run(name)
        out.append(RunScores(run=name, run_id=r["id"], env=r["env"], model=r["model"], policy=r["policy"],
                             prompt_format=r["prompt_format"], modes=run_modes(r), scores=score_run(store, r["id"], ks)))
    return out


def score_model(store: Store, model: str, ks: Sequence[int] | None = None) -> list[RunScores]:
    """All runs of one model pooled: every stored sample of a task counts (pass@k over all of them).

    Runs collected under different env modes are never pooled: one `RunScores` per distinct set of
    modes (a single one when every run agrees)."""
    runs = [r for r in store.list_runs() if r["model"] == model]
    if not runs:
        raise RunNotFound(f"no run of model {model!r} in this store")
    groups: dict[str, list[dict[str, Any]]] = {}
    for r in runs:
        groups.setdefault(modes_label(run_modes(r)), []).append(r)
    out = []
    for label, group in sorted(groups.items()):
        envs = sorted({r["env"] for r in group})
        suffix = f" [{label}]" if len(groups) > 1 else ""
        out.append(RunScores(run="model:" + model + suffix + " (" + ", ".join(r["name"] for r in group) + ")", run_id=-1,
                             env=", ".join(envs), model=model, policy=group[0]["policy"],
                             prompt_format=", ".join(sorted({r["prompt_format"] for r in group})),
                             modes=run_modes(group[0]), scores=score_tallies(task_tallies(store, [r["id"] for r in group]), ks)))
    return out


def mixed_modes(runs: Sequence[RunScores]) -> bool:
    """True when runs shown side by side were collected under different modes of the same env."""
    by_env: dict[str, set[str]] = {}
    for r in runs:
        by_env.setdefault(r.env, set()).add(modes_label(r.modes))
    return any(len(labels) > 1 for labels in by_env.values())


def env_error_count(runs: Sequence[RunScores]) -> int:
    """Env errors over every run, env and split (`trajgym eval` fails on any unless told otherwise)."""
    return sum(s.env_errors for r in runs for s in r.scores)


def compare_runs(store: Store, names: Sequence[str]) -> dict[str, Any]:
    return eval_payload(score_runs(store, names))


def eval_payload(runs: Sequence[RunScores]) -> dict[str, Any]:
    """`{"runs": [...]}`; with a single run also its `run` and `scores` at the top (the earlier shape)."""
    payload: dict[str, Any] = {}
    if len(runs) == 1:
        payload = {"run": runs[0].run, "modes": runs[0].modes, "scores": [s.model_dump(mode="json") for s in runs[0].scores]}
    payload["runs"] = [r.model_dump(mode="json") for r in runs]
    payload["mixed_modes"] = mixed_modes(runs)
    return payload
