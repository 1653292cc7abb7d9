"""Scores of a run per env and split, from the stored episodes.

Infra errors are counted but excluded from every denominator; pending/claimed
episodes are reported and not scored. A later issue extends this module (pass@k,
confidence intervals, exports); keep `score_run` returning plain pydantic rows.
"""

from __future__ import annotations

from pydantic import BaseModel
from sqlalchemy import Integer, case, func, select

from collector.store.models import Episode
from collector.store.repo import Store


class SplitScore(BaseModel):
    env: str
    split: str
    episodes: int            # scored episodes (done, not infra_error)
    successes: int
    success_rate: float | None
    mean_reward: float | None
    mean_progress: float | None
    mean_turns: float | None
    failures: int
    truncated: int
    policy_errors: int
    infra_errors: int        # excluded from the denominators above
    unfinished: int          # pending or claimed


def score_run(store: Store, run_id: int) -> list[SplitScore]:
    scored = (Episode.status == "done") & (Episode.outcome != "infra_error")
    stmt = (select(
        Episode.env, Episode.split,
        func.sum(case((scored, 1), else_=0)),
        func.sum(case((scored & (Episode.success == True), 1), else_=0)),  # noqa: E712
        func.sum(case((scored, Episode.reward), else_=None)),
        func.sum(case((scored, Episode.progress), else_=None)),
        func.sum(case((scored & Episode.progress.is_not(None), 1), else_=0)),
        func.sum(case((scored, Episode.turns), else_=None)),
        *(func.sum(case((Episode.outcome == o, 1), else_=0).cast(Integer))
          for o in ("failure", "truncated", "policy_error", "infra_error")),
        func.sum(case((Episode.status != "done", 1), else_=0)),
    ).where(Episode.run_id == run_id).group_by(Episode.env, Episode.split).order_by(Episode.env, Episode.split))
    out: list[SplitScore] = []
    with store.engine.begin() as conn:
        for env, split, n, succ, rsum, psum, pn, tsum, fail, trunc, pol, infra, unfinished in conn.execute(stmt):
            n, succ = int(n or 0), int(succ or 0)
            out.append(SplitScore(
                env=env, split=split, episodes=n, successes=succ,
                success_rate=succ / n if n else None,
                mean_reward=float(rsum or 0.0) / n if n else None,
                mean_progress=float(psum) / int(pn) if pn else None,
                mean_turns=float(tsum or 0) / n if n else None,
                failures=int(fail or 0), truncated=int(trunc or 0), policy_errors=int(pol or 0),
                infra_errors=int(infra or 0), unfinished=int(unfinished or 0)))
    return out
