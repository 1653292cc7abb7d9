"""The dashboard's reads: every figure is aggregated in SQL (GROUP BY over episodes), tables are paged.

Each function takes a `ReadStore`, runs synchronously (call it through `ReadStore.run`)
and returns a document of `services.dashboard.schemas`. Works on SQLite and PostgreSQL.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Float,
    Integer,
    and_,
    case,
    func,
    select,
)
from sqlalchemy.sql import Select

from store.scoring import modes_label, run_modes, score_run
from store.models import Episode, Run, Turn
from services.dashboard.db import ReadStore
from services.dashboard.schemas import (
    OUTCOMES,
    Bin,
    Comparison,
    EpisodeInfo,
    EpisodeRef,
    EpisodeView,
    LiveView,
    Message,
    ModelEnvScore,
    Page,
    ProgressCurve,
    RecentEpisode,
    RunDetail,
    RunList,
    RunSummary,
    Step,
    TaskFilter,
    TaskRow,
    TaskTable,
)

ALL_ENVS = "(all envs)"
MAX_CURVE_TURNS = 100
REWARD_BINS = 20
_ACTION = re.compile(r"Action\s*:", re.IGNORECASE)
_THOUGHT = re.compile(r"^\s*Thought\s*:\s*", re.IGNORECASE)


class NotFound(LookupError):
    pass


def utcnow() -> datetime:
    return datetime.now(UTC)


def aware(value: datetime | None) -> datetime | None:
    """SQLite gives naive datetimes back: they are UTC."""
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


def _count(cond: ColumnElement[bool]) -> ColumnElement[Any]:
    return func.sum(case((cond, 1), else_=0))


def _int(v: Any) -> int:
    return int(v or 0)


def _ratio(num: Any, den: int) -> float | None:
    return float(num or 0) / den if den else None


def make_page(page: int, per_page: int, total: int) -> Page:
    return Page(page=page, per_page=per_page, total=total, pages=max(1, math.ceil(total / per_page)))


# ----- runs ---------------------------------------------------------------------------
_DONE = Episode.status == "done"
_SCORED = _DONE & (Episode.outcome != "infra_error")
_PROGRESS = func.coalesce(Episode.progress, case((Episode.success == True, 1.0), else_=0.0))


def _run_aggregates(now: datetime) -> list[ColumnElement[Any]]:
    return [
        Episode.run_id, func.count(), _count(_DONE), _count(Episode.status == "pending"),
        _count(Episode.status == "claimed"), _count(_SCORED), _count(_SCORED & (Episode.success == True)),
        func.sum(case((_SCORED, Episode.reward), else_=None)), func.sum(case((_SCORED, Episode.turns), else_=None)),
        func.sum(Episode.prompt_tokens), func.sum(Episode.completion_tokens),
        func.min(Episode.started_at), func.max(Episode.finished_at), func.sum(Episode.duration_s),
        _count((Episode.status == "claimed") & (Episode.lease_until > now)),
        *(_count(_DONE & (Episode.outcome == o)) for o in OUTCOMES),
    ]


def _summaries(conn: Connection, runs: list[dict[str, Any]]) -> list[RunSummary]:
    if not runs:
        return []
    ids = [r["id"] for r in runs]
    now = utcnow()
    aggs = {row[0]: row for row in conn.execute(select(*_run_aggregates(now)).where(Episode.run_id.in_(ids))
                                                .group_by(Episode.run_id))}
    splits: dict[int, list[str]] = {}
    for run_id, split in conn.execute(select(Episode.run_id, Episode.split).where(Episode.run_id.in_(ids))
                                      .group_by(Episode.run_id, Episode.split).order_by(Episode.split)):
        splits.setdefault(run_id, []).append(split)
    out = []
    for r in runs:
        a = aggs.get(r["id"]) or (r["id"], 0, 0, 0, 0, 0, 0, None, None, 0, 0, None, None, 0.0, 0, *([0] * len(OUTCOMES)))
        (_, _total, done, pending, claimed, scored, succ, rsum, tsum, ptok, ctok, first, last, dsum, live,
         *outs) = a
        done, pending, claimed, scored = _int(done), _int(pending), _int(claimed), _int(scored)
        first, last = aware(first), aware(last)
        state = "complete" if pending + claimed == 0 else ("running" if _int(live) else "idle")
        outcomes = {o: _int(n) for o, n in zip(OUTCOMES, outs)}
        out.append(RunSummary(
            id=r["id"], name=r["name"], model=r["model"], policy=r["policy"], prompt_format=r["prompt_format"],
            env=r["env"], modes=run_modes(r), splits=splits.get(r["id"], []), created_at=aware(r["created_at"]),
            total_episodes=r["total_episodes"], done=done, pending=pending, claimed=claimed, scored=scored,
            successes=_int(succ), success_rate=_ratio(succ, scored), mean_reward=_ratio(rsum, scored),
            mean_turns=_ratio(tsum, scored), outcomes=outcomes, env_errors=outcomes["env_error"],
            infra_errors=outcomes["infra_error"],
            prompt_tokens=_int(ptok), completion_tokens=_int(ctok), started_at=first, finished_at=last,
            wall_s=(last - first).total_seconds() if first and last else None, episode_time_s=float(dsum or 0.0),
            state=state))
    return out


def list_runs(store: ReadStore, page: int = 1, per_page: int = 50) -> RunList:
    with store.engine.begin() as conn:
        if not store.has_tables(conn):
            return RunList(page=make_page(page, per_page, 0), runs=[])
        total = _int(conn.execute(select(func.count()).select_from(Run)).scalar())
        runs = [dict(r) for r in conn.execute(select(Run).order_by(Run.id.desc())
                                              .limit(per_page).offset((page - 1) * per_page)).mappings()]
        return RunList(page=make_page(page, per_page, total), runs=_summaries(conn, runs))


def _get_run(conn: Connection, store: ReadStore, run_id: int) -> dict[str, Any]:
    row = None
    if store.has_tables(conn):
        row = conn.execute(select(Run).where(Run.id == run_id)).mappings().first()
    if row is None:
        raise NotFound(f"no run with id {run_id}")
    return dict(row)


def run_summary(store: ReadStore, run_id: int) -> RunSummary:
    with store.engine.begin() as conn:
        return _summaries(conn, [_get_run(conn, store, run_id)])[0]


# ----- model comparison ---------------------------------------------------------------
def model_label(model: str | None, policy: str) -> str:
    return model if model else f"({policy})"


def _curve(by_turns: dict[int, tuple[int, float, int]], n: int) -> tuple[list[float], list[float]]:
    horizon = min(MAX_CURVE_TURNS, max(by_turns, default=0))
    progress, success, p, s = [], [], 0.0, 0
    for t in range(horizon + 1):
        _, psum, ssum = by_turns.get(t, (0, 0.0, 0))
        p, s = p + psum, s + ssum
        progress.append(p / n)
        success.append(s / n)
    # episodes longer than the horizon count from the last point on
    for t, (_, psum, ssum) in by_turns.items():
        if t > horizon:
            progress[-1] += psum / n
            success[-1] += ssum / n
    return progress, success


def _mean_curves(curves: list[list[float]]) -> list[float]:
    if not curves:
        return []
    horizon = max(len(c) for c in curves)
    padded = [c + [c[-1]] * (horizon - len(c)) for c in curves]
    return [sum(col) / len(col) for col in zip(*padded)]


CURVE_NOTE = ("Progress rate at turn t, as AgentBoard plots it, with the final progress of each episode counted "
              "from the turn the episode ended (the store keeps no per-turn progress, so episodes still going at "
              "turn t count 0 there: a lower bound that is exact at the last turn). Episodes without a progress "
              "figure count 1 if solved, else 0. Infra errors are excluded.")


def _compare_labels(runs: list[tuple[int, str | None, str, Any]]) -> tuple[dict[int, str], dict[str, str]]:
    """Per run id, the series it joins on the compare page, and per series its env modes. A model whose runs
    were collected under different modes gets one series per mode set (` · grading=...`): never pooled."""
    modes = {rid: modes_label(run_modes({"provenance": prov})) for rid, _, _, prov in runs}
    names = {rid: model_label(model, policy) for rid, model, policy, _ in runs}
    seen: dict[str, set[str]] = {}
    for rid in names:
        seen.setdefault(names[rid], set()).add(modes[rid])
    label = {rid: names[rid] if len(seen[names[rid]]) == 1 else f"{names[rid]} · {modes[rid]}" for rid in names}
    return label, {label[rid]: modes[rid] for rid in names}


def compare_models(store: ReadStore, split: str | None = None) -> Comparison:
    with store.engine.begin() as conn:
        if not store.has_tables(conn):
            return Comparison(split=split, models=[], envs=[], splits=[], scores=[], curves=[], curve_note=CURVE_NOTE)
        splits = [s for (s,) in conn.execute(select(Episode.split).group_by(Episode.split).order_by(Episode.split))]
        where = [Episode.split == split] if split else []
        # runs collected under different env modes are different rows: never pooled into one score
        label, series_modes = _compare_labels([tuple(r) for r in conn.execute(select(Run.id, Run.model, Run.policy,
                                                                                      Run.provenance))])
        rows = conn.execute(select(Episode.run_id, Episode.env).where(*where).add_columns(
            _count(_SCORED), _count(_SCORED & (Episode.success == True)),
            func.sum(case((_SCORED, Episode.reward), else_=None)), func.sum(case((_SCORED, _PROGRESS), else_=None)),
            _count(_DONE & (Episode.outcome == "infra_error")),
        ).group_by(Episode.run_id, Episode.env)).all()
        turn_rows = conn.execute(select(Episode.run_id, Episode.env, Episode.turns, func.count(),
                                        func.sum(_PROGRESS), _count(Episode.success == True))
                                 .where(_SCORED, *where)
                                 .group_by(Episode.run_id, Episode.env, Episode.turns)).all()
    merged: dict[tuple[str, str], list[Any]] = {}
    for run_id, env, scored, succ, rsum, psum, infra in rows:
        acc = merged.setdefault((label[run_id], env), [0, 0, 0, 0.0, 0.0, 0])
        for i, v in enumerate((1, scored, succ, rsum, psum, infra)):
            acc[i] += v or 0
    scores = [ModelEnvScore(model=m, modes=series_modes[m], env=e, runs=int(a[0]), scored=int(a[1]), successes=int(a[2]),
                            success_rate=_ratio(a[2], int(a[1])), mean_reward=_ratio(a[3], int(a[1])),
                            mean_progress=_ratio(a[4], int(a[1])), infra_errors=int(a[5]))
              for (m, e), a in sorted(merged.items())]
    hist: dict[tuple[str, str], dict[int, tuple[int, float, int]]] = {}
    for run_id, env, turns, n, psum, ssum in turn_rows:
        h = hist.setdefault((label[run_id], env), {})
        t = int(turns or 0)
        c, p, s = h.get(t, (0, 0.0, 0))
        h[t] = (c + int(n), p + float(psum or 0.0), s + int(ssum or 0))
    curves: list[ProgressCurve] = []
    per_model: dict[str, list[ProgressCurve]] = {}
    for (model, env), h in sorted(hist.items()):
        n = sum(c for c, _, _ in h.values())
        progress, success = _curve(h, n)
        curve = ProgressCurve(model=model, env=env, episodes=n, progress=progress, success=success)
        curves.append(curve)
        per_model.setdefault(model, []).append(curve)
    for model, cs in sorted(per_model.items()):
        if len(cs) > 1:
            curves.append(ProgressCurve(model=model, env=ALL_ENVS, episodes=sum(c.episodes for c in cs),
                                        progress=_mean_curves([c.progress for c in cs]),
                                        success=_mean_curves([c.success for c in cs])))
    return Comparison(split=split, models=sorted({s.model for s in scores}), envs=sorted({s.env for s in scores}),
                      splits=splits, scores=scores, curves=curves, curve_note=CURVE_NOTE)


# ----- run detail ---------------------------------------------------------------------
def _floor(conn: Connection, expr: ColumnElement[Any]) -> ColumnElement[Any]:
    """floor() of a non-negative expression as an integer (SQLite's CAST truncates; PostgreSQL's rounds)."""
    if conn.dialect.name == "sqlite":
        return func.cast(expr, Integer)
    return func.cast(func.floor(expr), Integer)


def _reward_histogram(conn: Connection, run_id: int) -> list[Bin]:
    scored = and_(Episode.run_id == run_id, _SCORED, Episode.reward.is_not(None))
    lo, hi = conn.execute(select(func.min(Episode.reward), func.max(Episode.reward)).where(scored)).one()
    if lo is None:
        return []
    lo, hi = float(lo), float(hi)
    if hi - lo < 1e-12:
        n = _int(conn.execute(select(func.count()).where(scored)).scalar())
        return [Bin(lo=lo, hi=hi, count=n)]
    width = (hi - lo) / REWARD_BINS
    bucket = _floor(conn, (Episode.reward - lo) / width)
    counts = [0] * REWARD_BINS
    for b, n in conn.execute(select(bucket, func.count()).where(scored).group_by(bucket)):
        counts[min(max(int(b), 0), REWARD_BINS - 1)] += int(n)
    return [Bin(lo=lo + i * width, hi=lo + (i + 1) * width, count=c) for i, c in enumerate(counts)]


def run_detail(store: ReadStore, run_id: int) -> RunDetail:
    with store.engine.begin() as conn:
        run = _get_run(conn, store, run_id)
        summary = _summaries(conn, [run])[0]
        hist = _reward_histogram(conn, run_id)
        turns = {int(t or 0): int(n) for t, n in conn.execute(
            select(Episode.turns, func.count()).where(Episode.run_id == run_id, _SCORED)
            .group_by(Episode.turns).order_by(Episode.turns))}
    scores = [s.model_dump(mode="json") for s in score_run(store, run_id)]
    outcome_counts = {k: v for k, v in summary.outcomes.items() if v}
    outcome_counts.update({k: v for k, v in (("pending", summary.pending), ("claimed", summary.claimed)) if v})
    return RunDetail(run=summary, config=run["config"] or {}, scores=scores, reward_histogram=hist,
                     turns_histogram=turns, outcome_counts=outcome_counts)


def _like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def task_table(store: ReadStore, run_id: int, f: TaskFilter) -> TaskTable:
    succ = _count(_SCORED & (Episode.success == True))
    scored = _count(_SCORED)
    cols = {
        "task_id": Episode.task_id,
        "split": func.min(Episode.split).label("split"),
        "episodes": func.count().label("episodes"),
        "done": _count(_DONE).label("done"),
        "scored": scored.label("scored"),
        "successes": succ.label("successes"),
        "success_rate": (func.cast(succ, Float) / func.nullif(scored, 0)).label("success_rate"),
        "mean_reward": (func.sum(case((_SCORED, Episode.reward), else_=None)) / func.nullif(scored, 0)).label("mean_reward"),
        "mean_turns": (func.cast(func.sum(case((_SCORED, Episode.turns), else_=None)), Float)
                       / func.nullif(scored, 0)).label("mean_turns"),
        "tokens": func.sum(func.coalesce(Episode.prompt_tokens, 0) + func.coalesce(Episode.completion_tokens, 0)).label("tokens"),
        "first_done": func.min(case((_DONE, Episode.id), else_=None)).label("first_done"),
        "first": func.min(Episode.id).label("first"),
        **{f"o_{o}": _count(_DONE & (Episode.outcome == o)).label(f"o_{o}") for o in OUTCOMES},
    }
    stmt: Select[Any] = select(*cols.values()).where(Episode.run_id == run_id).group_by(Episode.task_id)
    if f.split:
        stmt = stmt.where(Episode.split == f.split)
    if f.q:
        stmt = stmt.where(Episode.task_id.like(f"%{_like_escape(f.q)}%", escape="\\"))
    if f.outcome:
        stmt = stmt.having(_count(_DONE & (Episode.outcome == f.outcome)) > 0)
    if f.solved == "yes":
        stmt = stmt.having(succ > 0)
    elif f.solved == "no":
        stmt = stmt.having(and_(succ == 0, scored > 0))
    key = cols[f.sort]
    order = key.desc() if f.order == "desc" else key.asc()
    with store.engine.begin() as conn:
        _get_run(conn, store, run_id)
        total = _int(conn.execute(select(func.count()).select_from(stmt.subquery())).scalar())
        rows = conn.execute(stmt.order_by(order.nulls_last(), Episode.task_id)
                            .limit(f.per_page).offset((f.page - 1) * f.per_page)).mappings().all()
    tasks = [TaskRow(task_id=r["task_id"], split=r["split"], episodes=_int(r["episodes"]), done=_int(r["done"]),
                     scored=_int(r["scored"]), successes=_int(r["successes"]),
                     success_rate=r["success_rate"], mean_reward=r["mean_reward"], mean_turns=r["mean_turns"],
                     tokens=_int(r["tokens"]), outcomes={o: _int(r[f"o_{o}"]) for o in OUTCOMES if r[f"o_{o}"]},
                     first_episode=int(r["first_done"] or r["first"]))
             for r in rows]
    return TaskTable(run_id=run_id, filters=f, page=make_page(f.page, f.per_page, total), tasks=tasks)


# ----- trajectory viewer --------------------------------------------------------------
def split_thought(content: str | None) -> str | None:
    """The reasoning of an assistant message: the text before its last 'Action:' without 'Thought:'."""
    if not content:
        return None
    matches = list(_ACTION.finditer(content))
    text = content[: matches[-1].start()] if matches else content
    text = _THOUGHT.sub("", text).strip()
    return text or None


def group_steps(messages: list[Message]) -> list[Step]:
    """Messages → turns: a turn opens with the agent's message and closes with the env's answer."""
    groups: list[list[Message]] = []
    closed = True
    for m in messages:
        if m.role == "assistant" and (closed or not groups):
            groups.append([])
            closed = False
        if not groups:
            groups.append([])
        groups[-1].append(m)
        if m.role in ("user", "tool") and m.action is not None:
            closed = True
    steps = []
    for g in groups:
        agent = [m for m in g if m.role == "assistant"]
        answer = next((m for m in g if m.role in ("user", "tool") and m.action is not None), None)
        first_obs = None if agent else next((m for m in g if m.role == "user"), None)
        obs_msg = answer or first_obs
        pt = [m.prompt_tokens for m in agent if m.prompt_tokens is not None]
        ct = [m.completion_tokens for m in agent if m.completion_tokens is not None]
        lat = [m.latency_ms for m in agent if m.latency_ms is not None]
        steps.append(Step(
            step=answer.step if answer else (agent[-1].step if agent else 0),
            thought=agent[-1].thought if agent else None,
            action=answer.action if answer else None,
            observation=(obs_msg.observation if obs_msg.observation is not None else obs_msg.content) if obs_msg else None,
            reward=answer.reward if answer else None, done=answer.done if answer else None,
            prompt_tokens=sum(pt) if pt else None, completion_tokens=sum(ct) if ct else None,
            latency_ms=sum(lat) if lat else None, messages=g))
    return steps


_TURN_COLS = [Turn.idx, Turn.step, Turn.role, Turn.content, Turn.tool_calls, Turn.tool_call_id, Turn.action,
              Turn.observation, Turn.reward, Turn.done, Turn.prompt_tokens, Turn.completion_tokens,
              Turn.finish_reason, Turn.latency_ms]


def episode_view(store: ReadStore, episode_id: int) -> EpisodeView:
    with store.engine.begin() as conn:
        row = None
        if store.has_tables(conn):
            row = conn.execute(select(*Episode.__table__.columns, Run.name.label("run_name"))
                               .join(Run, Run.id == Episode.run_id).where(Episode.id == episode_id)).mappings().first()
        if row is None:
            raise NotFound(f"no episode with id {episode_id}")
        info = EpisodeInfo(**{k: (aware(v) if isinstance(v, datetime) else v)
                              for k, v in row.items() if k in EpisodeInfo.model_fields})
        turns = conn.execute(select(*_TURN_COLS).where(Turn.episode_id == episode_id).order_by(Turn.idx)).mappings().all()
        sibs = conn.execute(select(Episode.id, Episode.run_id, Run.name, Run.model, Episode.sample, Episode.outcome)
                            .join(Run, Run.id == Episode.run_id)
                            .where(Episode.env == info.env, Episode.task_id == info.task_id, _DONE)
                            .order_by(Episode.run_id, Episode.sample, Episode.id)).all()
    messages = [Message(thought=split_thought(t["content"]) if t["role"] == "assistant" else None, **t) for t in turns]
    refs = [EpisodeRef(id=i, run_id=r, run_name=n, model=m, sample=s, outcome=o) for i, r, n, m, s, o in sibs]
    pos = next((k for k, ref in enumerate(refs) if ref.id == episode_id), None)
    return EpisodeView(episode=info, steps=group_steps(messages), task_episodes=len(refs),
                       position=pos + 1 if pos is not None else None,
                       prev=refs[pos - 1] if pos is not None and pos > 0 else None,
                       next=refs[pos + 1] if pos is not None and pos + 1 < len(refs) else None)


# ----- live view ----------------------------------------------------------------------
def _epoch(conn: Connection, col: Any) -> ColumnElement[Any]:
    if conn.dialect.name == "sqlite":
        return (func.julianday(col) - 2440587.5) * 86400.0
    return func.extract("epoch", col)


def live_view(store: ReadStore, run_id: int, points: int = 60) -> LiveView:
    now = utcnow()
    mine = Episode.run_id == run_id
    with store.engine.begin() as conn:
        summary = _summaries(conn, [_get_run(conn, store, run_id)])[0]
        workers = {w or "?": int(n) for w, n in conn.execute(
            select(Episode.worker, func.count()).where(mine, Episode.status == "claimed", Episode.lease_until > now)
            .group_by(Episode.worker).order_by(Episode.worker))}
        last_min, last5 = conn.execute(select(_count(Episode.finished_at >= now - timedelta(seconds=60)),
                                              _count(Episode.finished_at >= now - timedelta(seconds=300)))
                                       .where(mine, _DONE)).one()
        epoch = _epoch(conn, Episode.finished_at)
        finished = and_(mine, _DONE, Episode.finished_at.is_not(None))
        lo, hi = conn.execute(select(func.min(epoch), func.max(epoch)).where(finished)).one()
        timeline: list[tuple[float, int]] = []
        if lo is not None:
            lo, hi = float(lo), float(hi)
            width = max((hi - lo) / points, 1e-3)
            bucket = _floor(conn, (epoch - lo) / width)
            counts = [0] * (points + 1)
            for b, n in conn.execute(select(bucket, func.count()).where(finished).group_by(bucket)):
                counts[min(max(int(b), 0), points)] += int(n)
            total = 0
            for i, c in enumerate(counts):
                total += c
                timeline.append((round(min(i * width, hi - lo), 3), total))
        recent = [RecentEpisode(id=r.id, task_id=r.task_id, split=r.split, outcome=r.outcome, reward=r.reward,
                                turns=r.turns, duration_s=r.duration_s, finished_at=aware(r.finished_at))
                  for r in conn.execute(select(Episode.id, Episode.task_id, Episode.split, Episode.outcome,
                                               Episode.reward, Episode.turns, Episode.duration_s, Episode.finished_at)
                                        .where(mine, _DONE).order_by(Episode.finished_at.desc().nulls_last(), Episode.id.desc())
                                        .limit(20))]
    window_min = 5.0
    if summary.started_at is not None:
        window_min = max(min(5.0, (now - summary.started_at).total_seconds() / 60.0), 1 / 60)
    rate = _int(last5) / window_min if last5 else None
    left = summary.pending + summary.claimed
    eta = left / rate * 60.0 if rate and left else (0.0 if not left else None)
    return LiveView(run=summary, now=now, workers=workers, finished_last_minute=_int(last_min), rate_per_min=rate,
                    eta_s=eta, timeline=timeline, recent=recent)
