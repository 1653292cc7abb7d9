"""Running the expert over many tasks: how often it answers right *with evidence shown*.

Finishing with the gold string always scores EM 1, so the figure that can fail is
grounded success: EM 1 within the turn limit and, for answers other than yes/no,
the answer appeared in an observation before finishing (for yes/no: every supporting
page was visited, or at least two pages where supporting pages are unknown). Questions qualify when their answer is yes/no or occurs in
some corpus page (after HotpotQA normalisation).
"""

from __future__ import annotations

from collections.abc import Iterable

from pydantic import BaseModel, Field

from envs.qa.data import QaData
from envs.qa.env import QaEnv
from envs.qa.reward import is_yes_no, normalize_answer


class ExpertEpisode(BaseModel):
    task_id: str
    qualifies: bool
    success: bool
    grounded: bool
    steps: int
    actions: list[str] = Field(default_factory=list)


class ExpertReport(BaseModel):
    episodes: list[ExpertEpisode]

    @property
    def qualifying(self) -> list[ExpertEpisode]:
        return [e for e in self.episodes if e.qualifies]

    def rate(self, episodes: list[ExpertEpisode] | None = None) -> float:
        eps = self.qualifying if episodes is None else episodes
        return sum(e.success and e.grounded for e in eps) / len(eps) if eps else 0.0

    def summary(self) -> str:
        q = self.qualifying
        em = sum(e.success for e in self.episodes)
        steps = sum(e.steps for e in self.episodes) / max(1, len(self.episodes))
        return (f"expert: {len(self.episodes)} questions, {len(q)} qualify (answer yes/no or in the corpus); "
                f"grounded success on qualifying {self.rate():.1%} ({sum(e.success and e.grounded for e in q)}/{len(q)}); "
                f"EM on all {em}/{len(self.episodes)}; mean steps {steps:.2f}")


def corpus_text(data: QaData) -> str:
    """All normalised pages in one string; pages are separated by a newline no answer contains."""
    return " " + " \n ".join(data.corpus.normalized) + " "


def answer_in_corpus(text: str, answer: str) -> bool:
    ans = normalize_answer(answer)
    return bool(ans) and f" {ans} " in text


def run_expert(data: QaData, task_ids: Iterable[str], keep_actions: bool = False) -> ExpertReport:
    episodes = []
    env = QaEnv(data)
    text = corpus_text(data)
    for task_id in task_ids:
        gold = data.gold[task_id]
        yes_no = is_yes_no(gold.answer)
        env.reset(task_id=task_id)
        actions: list[str] = []
        info: dict = {}
        while not env.done:
            action = env.expert_action()
            actions.append(action)
            info = env.step(action).info
        if yes_no:
            needed = {data.corpus.find(t) for t in gold.supporting_titles} - {None}
            grounded = needed <= env.visited if needed else len(env.visited) >= 2
        else:
            grounded = bool(info.get("answer_seen"))
        episodes.append(ExpertEpisode(
            task_id=task_id, qualifies=yes_no or answer_in_corpus(text, gold.answer),
            success=bool(info.get("success")), grounded=grounded, steps=env.turns,
            actions=actions if keep_actions else []))
    return ExpertReport(episodes=episodes)
