"""The demonstration expert: search the evidence pages, surface the answer, finish.

It knows the gold answer and the supporting titles (from HotpotQA's supporting
facts). Where those are unknown it derives them: pages whose title is named in
the question, plus the best BM25 page (for the question) whose text contains the
answer. It visits bridge pages first and the answer page last; if the answer is
not yet in any observation it walks `lookup[...]` to the sentence holding it, then
answers with the gold string. Yes/no questions: visit the compared pages, answer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from envs.qa.corpus import Corpus
from envs.qa.data import QaGold
from envs.qa.reward import contains_answer, is_yes_no, normalize_answer
from envs.qa.text import base_title, loose_key

SEARCH_POOL = 50
MAX_QUESTION_PAGES = 2


class EpisodeView(Protocol):
    """The per-episode state the expert reads (implemented by `QaEnv`)."""

    page: int | None
    visited: set[int]
    answer_seen: bool
    lookup_keyword: str | None
    lookup_hits: list[str]
    lookup_cursor: int

    def page_sentences(self, idx: int) -> tuple[str, ...]:
        """The sentences of a page as this episode's observations and lookups cut it."""
        ...


@dataclass(frozen=True)
class ExpertPlan:
    pages: tuple[int, ...]
    answer_page: int | None


def _resolves(corpus: Corpus, idx: int) -> bool:
    """A page is usable only if searching its own title shows that page."""
    return corpus.find(corpus.pages[idx].title) == idx


def _answer_pages(corpus: Corpus, gold: QaGold) -> list[int]:
    """Pages containing the answer, best BM25 match for question + answer first."""
    hits = [i for i in corpus.search(f"{gold.question} {gold.answer}", SEARCH_POOL)
            if contains_answer(corpus.normalized[i], gold.answer)]
    if not hits:
        hits = [i for i, text in enumerate(corpus.normalized) if contains_answer(text, gold.answer)]
    return [i for i in hits if _resolves(corpus, i)]


def _question_pages(corpus: Corpus, gold: QaGold) -> list[int]:
    """Pages whose title (without disambiguation) is named in the question, longest names first.

    The name must appear with the title's own capitalisation ("Sold" does not match "sold")."""
    question = f" {loose_key(gold.question)} "
    cased_question = f" {loose_key(gold.question, casefold=False)} "
    by_key: dict[str, list[int]] = {}
    for i, key in enumerate(corpus.base_keys):
        named = len(key) >= 3 and f" {key} " in question
        if named and f" {loose_key(base_title(corpus.pages[i].title), casefold=False)} " in cased_question:
            by_key.setdefault(key, []).append(i)
    chosen: list[str] = []
    for key in sorted(by_key, key=len, reverse=True):
        if not any(key in longer for longer in chosen):
            chosen.append(key)
    scores = corpus.scores(gold.question)
    pages: list[int] = []
    for key in chosen[:MAX_QUESTION_PAGES]:
        candidates = [i for i in by_key[key] if _resolves(corpus, i)]
        if candidates:
            best = max(candidates, key=lambda i: (contains_answer(corpus.normalized[i], gold.answer),
                                                  0.0 if scores is None else float(scores[i])))
            pages.append(best)
    return pages


def make_plan(corpus: Corpus, gold: QaGold) -> ExpertPlan:
    pages = [i for t in gold.supporting_titles if (i := corpus.find(t)) is not None and _resolves(corpus, i)]
    pages = list(dict.fromkeys(pages)) or _question_pages(corpus, gold)
    if is_yes_no(gold.answer):
        return ExpertPlan(tuple(pages), None)
    holding = [i for i in pages if contains_answer(corpus.normalized[i], gold.answer)]
    answer_page = holding[-1] if holding else next(iter(_answer_pages(corpus, gold)), None)
    ordered = [i for i in pages if i != answer_page]
    if answer_page is not None:
        ordered.append(answer_page)
    return ExpertPlan(tuple(ordered), answer_page)


def lookup_keyword(sentences: tuple[str, ...], answer: str) -> str | None:
    """A keyword whose first matching sentence holds the answer (else one that reaches it later)."""
    target = next((k for k, s in enumerate(sentences) if contains_answer(normalize_answer(s), answer)), None)
    if target is None:
        return None
    candidates = [answer.strip()] + sorted(dict.fromkeys(answer.split()), key=len, reverse=True)
    for word in candidates:
        w = word.lower()
        if len(w) >= 2 and w in sentences[target].lower():
            first = next(k for k, s in enumerate(sentences) if w in s.lower())
            if first == target:
                return word
    return next((w for w in candidates if len(w) >= 2 and w.lower() in sentences[target].lower()), None)


def next_action(plan: ExpertPlan, corpus: Corpus, gold: QaGold, state: EpisodeView) -> str:
    for idx in plan.pages:
        if idx not in state.visited:
            return f"search[{corpus.pages[idx].title}]"
    if plan.answer_page is not None and not state.answer_seen:
        page = corpus.pages[plan.answer_page]
        if state.page != plan.answer_page:
            return f"search[{page.title}]"
        keyword = lookup_keyword(state.page_sentences(plan.answer_page), gold.answer)
        exhausted = state.lookup_keyword == keyword and state.lookup_cursor >= len(state.lookup_hits)
        if keyword is not None and not exhausted:
            return f"lookup[{keyword}]"
    return f"finish[{gold.answer}]"
