"""Reads for curation and export: finished episodes with provenance, per-episode turn features, turn streams.

Everything here is a few set-based SQL statements over the store (no per-episode
query), so a 100,000-episode run is read in seconds. Turns are streamed in chunks of
episodes, ordered by (episode, idx), and never held for a whole run at once.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from sqlalchemy import String, and_, case, func, select, type_coerce

from store.models import Episode, Run, Turn
from store.repo import RunNotFound, Store

TURN_CHUNK = 1000  # episodes per turn query (well under SQLite's bound-parameter limit)


@dataclass(slots=True)
class EpisodeMeta:
    """A finished episode and its provenance (run, model, env, task, reward)."""

    id: int
    run_id: int
    run: str
    policy: str
    prompt_format: str
    model: str | None
    env: str
    split: str
    task_id: str
    sample: int
    outcome: str
    reward: float | None
    success: bool
    progress: float | None
    turns: int
    prompt_tokens: int | None
    completion_tokens: int | None


@dataclass(slots=True)
class TurnFeatures:
    """Per-episode aggregates over its turns, used by the format and length filters."""

    feedback_turns: int = 0       # user/tool messages that answered a refused reply (no action executed)
    context_tokens: int | None = None  # largest prompt+completion of any model call (= final context length)
    chars: int = 0                # characters of all message contents


def resolve_runs(store: Store, names: Sequence[str]) -> list[dict[str, Any]]:
    """Run rows for the given names, in the given order; RunNotFound names the first missing one."""
    with store.engine.begin() as conn:
        rows = {r["name"]: dict(r) for r in conn.execute(select(Run).where(Run.name.in_(list(names)))).mappings()}
    missing = [n for n in names if n not in rows]
    if missing:
        raise RunNotFound(f"no run named {missing[0]!r} in this store")
    return [rows[n] for n in names]


def finished_episodes(store: Store, runs: Sequence[dict[str, Any]]) -> list[EpisodeMeta]:
    """Every `done` episode of the runs (infra errors included: filters decide), ordered by episode id."""
    by_id = {r["id"]: r for r in runs}
    cols = (Episode.id, Episode.run_id, Episode.model, Episode.env, Episode.split, Episode.task_id, Episode.sample,
            Episode.outcome, Episode.reward, Episode.success, Episode.progress, Episode.turns, Episode.prompt_tokens,
            Episode.completion_tokens)
    stmt = (select(*cols).where(Episode.run_id.in_(list(by_id)), Episode.status == "done").order_by(Episode.id))
    out: list[EpisodeMeta] = []
    with store.engine.begin() as conn:
        for (eid, run_id, model, env, split, task_id, sample, outcome, reward, success, progress, turns, ptok,
             ctok) in conn.execute(stmt):
            run = by_id[run_id]
            out.append(EpisodeMeta(
                id=eid, run_id=run_id, run=run["name"], policy=run["policy"], prompt_format=run["prompt_format"],
                model=model if model is not None else run["model"], env=env, split=split, task_id=task_id,
                sample=sample, outcome=outcome or "", reward=reward, success=bool(success), progress=progress,
                turns=int(turns or 0), prompt_tokens=ptok, completion_tokens=ctok))
    return out


def _run_turns_join(run_ids: Sequence[int]) -> Any:
    return and_(Turn.episode_id == Episode.id, Episode.run_id.in_(list(run_ids)), Episode.status == "done")


def turn_features(store: Store, run_ids: Sequence[int]) -> dict[int, TurnFeatures]:
    """One grouped query: feedback turns, context tokens and characters per episode."""
    feedback = ((Turn.role.in_(("user", "tool"))) & (Turn.idx >= 2) & Turn.action.is_(None))
    stmt = (select(
        Turn.episode_id,
        func.sum(case((feedback, 1), else_=0)),
        func.max(_case_tokens()),
        func.sum(func.coalesce(func.length(Turn.content), 0)),
    ).join(Episode, _run_turns_join(run_ids)).group_by(Turn.episode_id))
    out: dict[int, TurnFeatures] = {}
    with store.engine.begin() as conn:
        for eid, fb, ctx, chars in conn.execute(stmt):
            out[eid] = TurnFeatures(feedback_turns=int(fb or 0), context_tokens=int(ctx) if ctx is not None else None,
                                    chars=int(chars or 0))
    return out


def _case_tokens() -> Any:
    return case(((Turn.role == "assistant") & Turn.prompt_tokens.is_not(None),
                 Turn.prompt_tokens + func.coalesce(Turn.completion_tokens, 0)), else_=None)


def action_sequences(store: Store, run_ids: Sequence[int]) -> dict[int, tuple[str, ...]]:
    """The executed actions of every episode, in order (observation turns carry the action they answer)."""
    stmt = (select(Turn.episode_id, Turn.action).join(Episode, _run_turns_join(run_ids))
            .where(Turn.action.is_not(None)).order_by(Turn.episode_id, Turn.idx))
    out: dict[int, list[str]] = {}
    with store.engine.begin() as conn:
        for eid, action in conn.execute(stmt):
            seq = out.get(eid)
            if seq is None:
                out[eid] = [action]
            else:
                seq.append(action)
    return {k: tuple(v) for k, v in out.items()}


def _json(value: Any) -> Any:
    """A JSON column read as text (no per-row decoding by SQLAlchemy): decode only real content."""
    if value is None or not isinstance(value, str):
        return value  # SQL NULL, or a driver (psycopg) that already decoded it
    return None if value == "null" else json.loads(value)


def _fetch_chunk(store: Store, chunk: list[int]) -> list[Any]:
    cols = (Turn.episode_id, Turn.role, Turn.content, type_coerce(Turn.tool_calls, String), Turn.tool_call_id,
            Turn.action)
    with store.engine.begin() as conn:
        return list(conn.execute(select(*cols).where(Turn.episode_id.in_(chunk))
                                 .order_by(Turn.episode_id, Turn.idx)).all())


def iter_turns(store: Store, episode_ids: Sequence[int]) -> Iterator[tuple[int, list[dict[str, Any]]]]:
    """(episode id, its turns in order) for the given episodes, in the given order, streamed in chunks.

    The next chunk is read in a helper thread while the caller formats the current one."""
    chunks = [list(episode_ids[i : i + TURN_CHUNK]) for i in range(0, len(episode_ids), TURN_CHUNK)]
    if not chunks:
        return
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="trajgym-export-read") as pool:
        pending = pool.submit(_fetch_chunk, store, chunks[0])
        for n, chunk in enumerate(chunks):
            rows = pending.result()
            if n + 1 < len(chunks):
                pending = pool.submit(_fetch_chunk, store, chunks[n + 1])
            grouped: dict[int, list[dict[str, Any]]] = {eid: [] for eid in chunk}
            for eid, role, content, tool_calls, tool_call_id, action in rows:
                grouped[eid].append({"role": role, "content": content, "tool_calls": _json(tool_calls),
                                     "tool_call_id": tool_call_id, "action": action})
            for eid in chunk:
                yield eid, grouped[eid]
