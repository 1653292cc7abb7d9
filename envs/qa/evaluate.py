"""Running the expert over many tasks: how often it answers right *with evidence shown*.

Finishing with the gold string always scores EM 1, so the figure that can fail is
grounded success: EM 1 within the turn limit and, for answers other than yes/no,
the answer appeared in an observation before finishing (for yes/no: at least two
pages were visited). Questions qualify when their answer is yes/no or occurs in
some corpus page (after HotpotQA normalisation).
"""

from __future__ import annotations

from collections.abc import Iterable

from pydantic import BaseModel, Field

from envs.qa.data import QaData
from envs.qa.env import QaEnv
from envs.qa.reward import contains_answer, is_yes_no


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


def answer_in_corpus(data: QaData, answer: str) -> bool:
    return any(contains_answer(text, answer) for text in data.corpus.normalized)


def run_expert(data: QaData, task_ids: Iterable[str], keep_actions: bool = False) -> ExpertReport:
    episodes = []
    env = QaEnv(data)
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
        grounded = len(env.visited) >= 2 if yes_no else bool(info.get("answer_seen"))
        episodes.append(ExpertEpisode(
            task_id=task_id, qualifies=yes_no or answer_in_corpus(data, gold.answer),
            success=bool(info.get("success")), grounded=grounded, steps=env.turns,
            actions=actions if keep_actions else []))
    return ExpertReport(episodes=episodes)
