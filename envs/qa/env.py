"""`QaEnv`: one HotpotQA episode in ReAct's Wikipedia environment (search / lookup / finish / think).

By default every text, refusal and state change is ReAct's (``wikienv.py`` +
``wrappers.py`` HotPotQAWrapper + ``hotpotqa.ipynb``'s action handling, see
`envs.qa.react`); only retrieval differs: a local corpus with BM25 instead of the
Wikipedia API. ``search[entity]`` opens the page titled ``entity`` and shows its first
five sentences as ReAct splits them; a miss answers ``Could not find X. Similar: [...].``
with BM25's top titles and leaves the current page and its lookup where they were;
``lookup[keyword]`` walks the current page's sentences containing ``keyword`` with
``(Result k / n)``, then ``No more results.\n`` (also with no page, and an empty keyword
matches every sentence); ``think[...]`` answers ``Nice thought.``; ``finish[answer]``
always ends the episode and is graded by HotpotQA's official ``hotpot_evaluate_v1.py``
semantics, reward = exact match (F1, precision and recall in ``info``).

Named modes (the first of each is ReAct's / HotpotQA's):

* ``grading``: ``official`` | ``lenient`` (an empty ``finish[]`` is refused and the episode goes on).
* ``observation``: ``react`` | ``sentences`` (trajgym's earlier texts: the corpus's own sentence split,
  no trailing newlines, and a search that finds no page leaves no current page).
* ``parsing``: ``strict`` | ``lenient`` (verbs in any case, blank space around arguments ignored, a
  lookup keyword continues whatever its case; an empty search or lookup and a lookup with no page are
  refused with feedback that changes nothing).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from envs.actions import ActionParseError, UnknownActionForm
from envs.base import Env, EnvError, ModeSpec
from envs.qa import react
from envs.qa.data import QaData, QaGold, load_qa_data
from envs.qa.expert import ExpertPlan, make_plan, next_action
from envs.qa.reward import contains_answer, is_yes_no, normalize_answer, score
from envs.types import Action, StepResult, TaskSpec, ToolCall, ToolParam, ToolSpec

PAGE_SENTENCES = react.PAGE_SENTENCES


class QaEnv(Env[QaData]):
    name = "qa"
    version = "0.2.0"
    description = ("Multi-hop question answering with a local search engine (HotpotQA / ReAct / FireAct): "
                   "search[entity], lookup[keyword], finish[answer] (and think[thought]); reward = exact match.")
    max_turns = 12
    modes: ClassVar[tuple[ModeSpec, ...]] = (
        ModeSpec("grading", ("official", "lenient"),
                 "official: finish[answer] ends the episode and is graded as hotpot_evaluate_v1.py does "
                 "(an empty answer scores EM 0, F1 0); lenient: an empty finish[] is refused with feedback "
                 "(a turn is used) and the episode goes on"),
        ModeSpec("observation", ("react", "sentences"),
                 "react: ReAct's WikiEnv texts (pages cut at '. ' with a period appended, 'No more results.\\n', "
                 "'Episode finished, reward = N\\n'; a search that finds nothing keeps the current page); "
                 "sentences: the corpus's own sentences, no trailing newlines, a failed search leaves no page"),
        ModeSpec("parsing", ("strict", "lenient"),
                 "strict: ReAct's (first letter lower-cased, then verb[argument] case-sensitively, the argument "
                 "verbatim; empty search/lookup and lookup without a page are not refused); lenient: verbs in "
                 "any case, arguments stripped, those three refused with feedback"),
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
        ToolSpec(name="think", description="Think aloud; changes nothing (ReAct's environment answers 'Nice thought.').",
                 params=[ToolParam(name="thought", description="the thought")],
                 text_template="think[{thought}]"),
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

    def mode(self, axis: str) -> str:
        """The value of a named mode (its default where the data was loaded without `load_data`)."""
        value = self.data.modes.get(axis)
        return value if value is not None else next(m.choices[0] for m in self.modes if m.axis == axis)

    @property
    def _react_texts(self) -> bool:
        return self.mode("observation") == "react"

    @property
    def _lenient_parsing(self) -> bool:
        return self.mode("parsing") == "lenient"

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

    def page_sentences(self, idx: int) -> tuple[str, ...]:
        """The sentences of page `idx` that observations and lookups use in this mode."""
        page = self.data.corpus.pages[idx]
        return react.page_sentences(page.source_text) if self._react_texts else page.sentences

    # ----- actions ------------------------------------------------------------------
    def parse_action(self, action: str | ToolCall | dict[str, Any]) -> Action:
        """Strict parsing reads text as ReAct does (`envs.qa.react`); tool calls and lenient parsing
        use the generic parser."""
        if not isinstance(action, str) or self._lenient_parsing:
            return super().parse_action(action)
        text = react.harness_text(action)
        if text.endswith("</s>"):  # an end-of-sequence token left by a local model, as every env drops it
            text = text[: -len("</s>")].rstrip()
        if not text:
            raise ActionParseError("empty action")
        if len(text) > self.parser().max_len:
            raise ActionParseError(f"action longer than {self.parser().max_len} characters")
        return react.parse_react(text)

    def invalid_action_feedback(self, error: UnknownActionForm) -> str:
        if isinstance(error, react.InvalidReactAction):
            return react.invalid_action(error.action)
        return super().invalid_action_feedback(error)

    def act(self, action: Action) -> StepResult:
        if action.name == "search":
            result = self._search(action.arguments["entity"])
        elif action.name == "lookup":
            result = self._lookup(action.arguments["keyword"])
        elif action.name == "think":
            result = StepResult(observation=react.NICE_THOUGHT)
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

    @staticmethod
    def _refuse(message: str) -> StepResult:
        return StepResult(observation=message, info={"invalid_action": True})

    def _reset_lookup(self) -> None:
        self.lookup_keyword, self.lookup_hits, self.lookup_cursor = None, [], 0

    def _search(self, entity: str) -> StepResult:
        if not entity and self._lenient_parsing:
            return self._refuse("Empty search: name an entity, e.g. search[Albert Einstein].")
        corpus = self.data.corpus
        idx = corpus.find(entity)
        if idx is None:
            if not self._react_texts:  # trajgym's earlier model: a miss leaves no current page
                self.page = None
                self._reset_lookup()
            return self._observe(react.not_found(entity, corpus.similar_titles(entity, 5)), found=False)
        self.page = idx
        self.visited.add(idx)
        self._reset_lookup()
        return self._observe(react.page_observation(self.page_sentences(idx)), found=True,
                             page=corpus.pages[idx].title)

    def _lookup(self, keyword: str) -> StepResult:
        if self._lenient_parsing:
            if not keyword:
                return self._refuse("Empty lookup: give a keyword, e.g. lookup[born].")
            if self.page is None:
                return self._refuse("There is no current page to look up in: use search[entity] to open a page first.")
            same = self.lookup_keyword is not None and keyword.casefold() == self.lookup_keyword.casefold()
        else:
            same = keyword == self.lookup_keyword  # ReAct starts over whenever the keyword differs at all
        if not same:
            self.lookup_keyword = keyword
            sentences = () if self.page is None else self.page_sentences(self.page)
            self.lookup_hits = react.lookup_matches(sentences, keyword)
            self.lookup_cursor = 0
        if self.lookup_cursor >= len(self.lookup_hits):
            return self._observe(react.NO_MORE_RESULTS if self._react_texts else react.NO_MORE_RESULTS.rstrip("\n"))
        k = self.lookup_cursor
        self.lookup_cursor += 1
        return self._observe(react.lookup_result(k + 1, len(self.lookup_hits), self.lookup_hits[k]))

    def _finish(self, answer: str) -> StepResult:
        if not answer.strip() and self.mode("grading") == "lenient":
            return self._refuse("Empty answer: give your answer, e.g. finish[Paris].")
        gold = self._gold
        s = score(answer, gold.answer)
        self.succeeded = s.em == 1.0
        info = {"success": self.succeeded, "em": s.em, "f1": s.f1, "precision": s.precision, "recall": s.recall,
                "answer": answer, "gold_answer": gold.answer,
                "answer_seen": None if is_yes_no(gold.answer) else self.answer_seen,
                "pages_visited": len(self.visited)}
        return StepResult(observation=react.finished(int(s.em), newline=self._react_texts), reward=s.em, done=True,
                          info=info)

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
