"""A synthetic, deterministic trajectory store for demos, the dashboard's tests and its benchmark.

Runs are written the way the collector writes them (`Store.open_run`, `claim`,
`commit` with `EpisodeRecord`/`TurnRecord`), so the dashboard reads exactly that
shape. `python -m tests.support.dashboard_seed demo.db --episodes 5000` makes a demo store.
"""

from __future__ import annotations

import argparse
import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from store.records import EpisodeRecord, TurnRecord
from store.repo import Store, worker_id


@dataclass
class RunSpec:
    name: str
    env: str
    model: str | None
    tasks: list[tuple[str, str]]          # (task_id, split)
    samples: int = 1
    skill: float = 0.5                    # chance of success
    max_turns: int = 8
    finish: int | None = None             # finish only this many episodes (a live run); None = all
    claim_more: int = 0                   # then leave this many claimed by this process (live claims)
    infra_rate: float = 0.02
    infra_only: bool = False
    policy: str = "model"
    with_turns: bool = True
    seed: int = 0
    inject: dict[str, str] = field(default_factory=dict)  # task_id → text put into its first observation


def tasks_for(env: str, n: int, splits: tuple[str, ...] = ("train", "dev", "test")) -> list[tuple[str, str]]:
    return [(f"{env}-{i:05d}", splits[i % len(splits)]) for i in range(n)]


def _turns(rng: random.Random, spec: RunSpec, task_id: str, n_steps: int, success: bool,
           policy_error: bool) -> tuple[list[TurnRecord], float, float | None, int, int]:
    obs0 = f"You are in room {rng.randint(1, 99)}. Task {task_id}: find the {rng.choice(['key', 'mug', 'book'])}."
    obs0 = spec.inject.get(task_id, "") + obs0
    msgs = [TurnRecord(step=0, role="system", content="You are an agent. Reply with Thought: and Action:."),
            TurnRecord(step=0, role="user", content=obs0, observation=obs0)]
    reward_total, pt_total, ct_total = 0.0, 0, 0
    progress = 0.0
    for step in range(1, n_steps + 1):
        last = step == n_steps
        action = rng.choice(["look", "go north", "go south", "take key", "open door"]) + f" {step}"
        pt, ct = 200 + 60 * step + rng.randint(0, 40), rng.randint(10, 60)
        pt_total, ct_total = pt_total + pt, ct_total + ct
        msgs.append(TurnRecord(step=step, role="assistant", content=f"Thought: step {step} of {task_id}.\nAction: {action}",
                               prompt_tokens=pt, completion_tokens=ct, finish_reason="stop",
                               latency_ms=round(rng.uniform(80, 900), 1)))
        if policy_error and last:
            msgs.append(TurnRecord(step=step - 1, role="user", content="Your reply has no 'Action:' line."))
            break
        r = 1.0 if (last and success) else 0.0
        progress = max(progress, min(1.0, step / n_steps * (1.0 if success else rng.uniform(0.2, 0.9))))
        reward_total += r
        obs = f"Step {step}: you did {action}." + (" Task complete." if r else "")
        msgs.append(TurnRecord(step=step, role="user", content=obs, action=action, observation=obs, reward=r, done=last))
    return msgs, reward_total, (1.0 if success else round(progress, 3)), pt_total, ct_total


def seed_run(store: Store, spec: RunSpec, *, start: datetime | None = None, batch: int = 500) -> int:
    """Create and fill one run; returns its id."""
    rng = random.Random(f"{spec.seed}:{spec.name}")
    run, _ = store.open_run(spec.name, {"env": spec.env, "model": spec.model, "seed": spec.seed}, f"{spec.seed:064d}",
                            env=spec.env, model=spec.model, policy=spec.policy, prompt_format="react",
                            tasks=spec.tasks, samples=spec.samples, resume=False)
    worker = worker_id()
    todo = spec.finish if spec.finish is not None else len(spec.tasks) * spec.samples
    clock = start or datetime.now(UTC) - timedelta(seconds=todo * 0.5 + 60)
    while todo > 0:
        claimed = store.claim(run["id"], worker, min(batch, todo), lease_s=600)
        if not claimed:
            break
        records = []
        for c in claimed:
            duration = rng.uniform(1.0, 20.0)
            started, clock = clock, clock + timedelta(seconds=0.5)
            infra = spec.infra_only or rng.random() < spec.infra_rate
            if infra:
                records.append(EpisodeRecord(episode_id=c.id, outcome="infra_error", attempt=c.attempt + 3,
                                             model=spec.model, started_at=started,
                                             finished_at=started + timedelta(seconds=duration), duration_s=duration,
                                             error="env create: connection refused (127.0.0.1:9)"))
                continue
            success = rng.random() < spec.skill
            roll = rng.random()
            policy_error = not success and roll < 0.1
            truncated = not success and not policy_error and roll < 0.35
            n_steps = spec.max_turns if truncated else rng.randint(1, spec.max_turns)
            msgs, reward, progress, pt, ct = _turns(rng, spec, c.task_id, n_steps, success, policy_error)
            outcome = "success" if success else "policy_error" if policy_error else "truncated" if truncated else "failure"
            records.append(EpisodeRecord(
                episode_id=c.id, outcome=outcome, attempt=c.attempt + 1, reward=reward, success=success,
                progress=progress, turns=n_steps - (1 if policy_error else 0), prompt_tokens=pt, completion_tokens=ct,
                model=spec.model, started_at=started, finished_at=started + timedelta(seconds=duration),
                duration_s=duration, model_time_s=duration * 0.7, env_time_s=duration * 0.2,
                messages=msgs if spec.with_turns else []))
        store.commit(records, worker)
        todo -= len(claimed)
    if spec.claim_more:
        store.claim(run["id"], worker, spec.claim_more, lease_s=3600)
    return int(run["id"])


def big_store_specs(episodes: int = 50_000, with_turns: bool = True) -> list[RunSpec]:
    """Six runs over two envs and three models; half of the episodes in one run (the worst page)."""
    big = episodes // 2
    rest = (episodes - big) // 5
    specs = [RunSpec("big-model-a-webshop", "webshop", "model-a", tasks_for("webshop", big), skill=0.55, seed=1,
                     with_turns=with_turns)]
    for i, (model, env, skill) in enumerate([("model-a", "household", 0.4), ("model-b", "webshop", 0.35),
                                             ("model-b", "household", 0.3), ("model-c", "webshop", 0.6),
                                             ("model-c", "household", 0.5)]):
        specs.append(RunSpec(f"{model}-{env}", env, model, tasks_for(env, rest), skill=skill, seed=10 + i,
                             with_turns=with_turns))
    return specs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("store", help="SQLite file or SQLAlchemy URL")
    parser.add_argument("--episodes", type=int, default=5000)
    args = parser.parse_args()
    store = Store(args.store)
    for spec in big_store_specs(args.episodes):
        seed_run(store, spec)
    store.close()


if __name__ == "__main__":
    main()
