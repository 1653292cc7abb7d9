"""Write runs with chosen episodes into a store through its own API (open_run → claim → commit).

Used by the export/scoring tests (stores with known episodes) and by the export
benchmark (a large store). Nothing here fakes the store: rows are written exactly as
the collector writes them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from store.records import EpisodeRecord, TurnRecord
from store.repo import Store


@dataclass
class EpisodeSpec:
    task_id: str
    split: str = "train"
    sample: int = 0
    outcome: str = "success"
    reward: float | None = 1.0
    success: bool | None = True
    progress: float | None = None
    turns: int | None = None          # env steps; default: number of executed actions in `messages`
    model: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    messages: list[TurnRecord] = field(default_factory=list)


def react_messages(system: str, first: str, steps: Sequence[tuple[str, str | None, str]]) -> list[TurnRecord]:
    """system, first observation, then per step (assistant reply, executed action or None, next user text).

    A step whose action is None is a refused reply: the user text is the feedback and carries no action."""
    out = [TurnRecord(step=0, role="system", content=system), TurnRecord(step=0, role="user", content=first)]
    step = 0
    for reply, action, text in steps:
        out.append(TurnRecord(step=step + 1, role="assistant", content=reply))
        if action is not None:
            step += 1
        out.append(TurnRecord(step=step, role="user", content=text, action=action, observation=text))
    return out


def build_run(store: Store, name: str, episodes: Sequence[EpisodeSpec], *, env: str = "counter",
              model: str | None = "test-model", policy: str = "model", prompt_format: str = "react",
              tasks: Sequence[tuple[str, str]] | None = None, samples: int | None = None,
              batch: int = 2000) -> int:
    """Create run `name` over `tasks` × `samples` (default: those of the specs) and commit the specs'
    episodes; grid cells without a spec stay pending. Returns the run id."""
    if tasks is None:
        seen: dict[str, str] = {}
        for e in episodes:
            seen.setdefault(e.task_id, e.split)
        tasks = list(seen.items())
    n_samples = samples if samples is not None else max((e.sample for e in episodes), default=0) + 1
    run, _ = store.open_run(name, {"synthetic": True}, f"synthetic-{name}", env=env, model=model, policy=policy,
                            prompt_format=prompt_format, tasks=tasks, samples=n_samples, resume=False)
    worker = f"synthetic:{name}"
    claimed = store.claim(run["id"], worker, len(tasks) * n_samples, 3600.0)
    ids = {(c.task_id, c.sample): c.id for c in claimed}
    records = []
    for e in episodes:
        executed = sum(1 for m in e.messages if m.action is not None)
        records.append(EpisodeRecord(
            episode_id=ids[(e.task_id, e.sample)], outcome=e.outcome, attempt=1, reward=e.reward, success=e.success,
            progress=e.progress, turns=e.turns if e.turns is not None else executed, prompt_tokens=e.prompt_tokens,
            completion_tokens=e.completion_tokens, model=e.model if e.model is not None else model,
            messages=list(e.messages)))
    for i in range(0, len(records), batch):
        store.commit(records[i : i + batch], worker)
    done = {r.episode_id for r in records}
    store.release([i for i in ids.values() if i not in done], worker)
    return int(run["id"])
