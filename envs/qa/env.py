"""`QaEnv`: one HotpotQA-style episode with ReAct's search / lookup / finish actions.

Observations follow ReAct's Wikipedia environment: a found page shows its first
five sentences; a miss answers ``Could not find X. Similar: [...]`` with BM25's
top titles (after which there is no current page, as in ReAct); ``lookup`` walks
the current page's sentences containing the keyword with ``(Result k / n)``;
``finish[answer]`` always ends the episode, as in ReAct: the answer (an empty one
included) is graded by HotpotQA's official ``hotpot_evaluate_v1.py`` semantics,
reward = exact match (F1, precision and recall in ``info``).

Modes (``ModeSpec``): ``grading=official`` (default, the above) or ``grading=lenient``:
an empty ``finish[]`` is answered with feedback and the episode goes on.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from envs.base import Env, EnvError, ModeSpec
from envs.qa.data import QaData, QaGold, load_qa_data
from envs.qa.expert import ExpertPlan, make_plan, next_action
from envs.qa.reward import contains_answer, is_yes_no, normalize_answer, score
from envs.types import Action, StepResult, TaskSpec, ToolParam, ToolSpec

PAGE_SENTENCES = 5


class QaEnv(Env[QaData]):
    name = "qa"
    version = "0.1.0"
    description = ("Multi-hop question answering with a local search engine (HotpotQA / ReAct / FireAct): "
                   "search[entity], lookup[keyword], finish[answer]; reward = exact match.")
    max_turns = 12
    modes: ClassVar[tuple[ModeSpec, ...]] = (
        ModeSpec("grading", ("official", "lenient"),
                 "official: finish[answer] ends the episode and is graded as hotpot_evaluate_v1.py does "
                 "(an empty answer scores EM 0, F1 0); lenient: an empty finish[] is refused with feedback "
                 "(a turn is used) and the episode goes on"),
    )
    tools: ClassVar[list[ToolSpec]] = [
        ToolSpec(name="search", description="Search the corpus for a page titled `entity`; returns its first sentences, "
                                            "or similar page titles if there is no such page.",
                 params=[ToolParam(name="entity", description="the page title to look for")],
                 text_template="search[{entity}]"),
        ToolSpec(name="lookup", description="Return the next sentence of the current page that contains `keyword`.",
                 params=[ToolParam(name="keyword", description="text to find in the current page")],
                 text_template="lookup[{keyword}]"),
        ToolSpec(name="finish", description="Give the final answer and end the episode.",
                 params=[ToolParam(name="answer", description="the answer, as short as possible")],
                 text_template="finish[{answer}]"),
    ]
    system_prompt = (
        "Answer the question by interleaving Thought, Action and Observation steps. "
        "The Thought reasons about the situation; the Action is one of:\n"
        "(1) search[entity]: looks up the page named entity and shows its first sentences; "
        "if there is no such page, it lists similar page titles to search instead.\n"
        "(2) lookup[keyword]: shows the next sentence containing keyword in the current page.\n"
        "(3) finish[answer]: gives the answer and ends the task.\n"
        "Answers are graded by exact match after removing case, punctuation and articles, so keep them short."
    )

    @classmethod
    def load(cls, data_dir: Path | None = None) -> QaData:
        return load_qa_data(data_dir)

    # ----- episode ------------------------------------------------------------------
    def __init__(self, data: QaData) -> None:
        super().__init__(data)
        self._clear()

    def _clear(self) -> None:
        """Per-episode state: a few ints and references into the shared corpus."""
        self.gold: QaGold | None = None
        self.page: int | None = None
        self.visited: set[int] = set()
        self.answer_seen = False
        self.lookup_keyword: str | None = None
        self.lookup_hits: list[str] = []
        self.lookup_cursor = 0
        self.succeeded = False
        self._plan: ExpertPlan | None = None
        self._supporting: tuple[int, ...] = ()

    def start(self, task: TaskSpec) -> str:
        self._clear()
        self.gold = self.data.gold[task.task_id]
        corpus = self.data.corpus
        self._supporting = tuple({i for t in self.gold.supporting_titles if (i := corpus.find(t)) is not None})
        return f"Question: {task.instruction}"

    @property
    def _gold(self) -> QaGold:
        if self.gold is None:
            raise EnvError("reset() must be called first")
        return self.gold

    def act(self, action: Action) -> StepResult:
        if action.name == "search":
            result = self._search(action.arguments["entity"])
        elif action.name == "lookup":
            result = self._lookup(action.arguments["keyword"])
        else:
            result = self._finish(action.arguments["answer"])
        if not result.done and self.turns + 1 >= self.max_turns:
            result.info["success"] = False  # the base class truncates this step: the episode ends unanswered
        return result

    def _observe(self, text: str, **info: object) -> StepResult:
        gold = self._gold
        if not self.answer_seen and not is_yes_no(gold.answer):
            self.answer_seen = contains_answer(normalize_answer(text), gold.answer)
        return StepResult(observation=text, info=dict(info))

    def _search(self, entity: str) -> StepResult:
        if not entity:
            return StepResult(observation="Empty search: name an entity, e.g. search[Albert Einstein].",
                              info={"invalid_action": True})
        corpus = self.data.corpus
        self.lookup_keyword, self.lookup_hits, self.lookup_cursor = None, [], 0
        idx = corpus.find(entity)
        if idx is None:
            self.page = None
            similar = corpus.similar_titles(entity, 5)
            return self._observe(f"Could not find {entity}. Similar: {similar}.", found=False)
        self.page = idx
        self.visited.add(idx)
        page = corpus.pages[idx]
        return self._observe(" ".join(page.sentences[:PAGE_SENTENCES]), found=True, page=page.title)

    def _lookup(self, keyword: str) -> StepResult:
        if not keyword:
            return StepResult(observation="Empty lookup: give a keyword, e.g. lookup[born].", info={"invalid_action": True})
        if self.page is None:
            return StepResult(observation="There is no current page to look up in: use search[entity] to open a page first.",
                              info={"invalid_action": True})
        if self.lookup_keyword is None or keyword.casefold() != self.lookup_keyword.casefold():
            needle = keyword.lower()
            self.lookup_keyword = keyword
            self.lookup_hits = [s for s in self.data.corpus.pages[self.page].sentences if needle in s.lower()]
            self.lookup_cursor = 0
        if self.lookup_cursor >= len(self.lookup_hits):
            return self._observe("No more results.")
        k = self.lookup_cursor
        self.lookup_cursor += 1
        return self._observe(f"(Result {k + 1} / {len(self.lookup_hits)}) {self.lookup_hits[k]}")

    def _finish(self, answer: str) -> StepResult:
        if not answer.strip() and self.data.modes.get("grading", "official") == "lenient":
            return StepResult(observation="Empty answer: give your answer, e.g. finish[Paris].", info={"invalid_action": True})
        gold = self._gold
        s = score(answer, gold.answer)
        self.succeeded = s.em == 1.0
        info = {"success": self.succeeded, "em": s.em, "f1": s.f1, "precision": s.precision, "recall": s.recall,
                "answer": answer, "gold_answer": gold.answer,
                "answer_seen": None if is_yes_no(gold.answer) else self.answer_seen,
                "pages_visited": len(self.visited)}
        return StepResult(observation=f"Episode finished, reward = {int(s.em)}", reward=s.em, done=True, info=info)

    # ----- expert and progress ------------------------------------------------------
    def expert_action(self) -> str:
        if self._plan is None:
            self._plan = make_plan(self.data.corpus, self._gold)
        return next_action(self._plan, self.data.corpus, self._gold, self)

    def progress(self) -> float | None:
        """Fraction of the supporting pages visited (1.0 once answered right); None where unknown."""
        if self.succeeded:
            return 1.0
        if not self._supporting:
            return None
        return sum(i in self.visited for i in self._supporting) / len(self._supporting)
