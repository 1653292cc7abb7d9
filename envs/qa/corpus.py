"""The searchable corpus: pages split into sentences, title lookup and a BM25 index.

Built once per service in `QaEnv.load()` and read-only afterwards: every method
here only reads, so sessions may search concurrently from worker threads. BM25
scoring uses bm25s; query tokens are mapped to ids here (never through the
tokenizer object, which may grow its vocabulary).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import bm25s
import numpy as np
from bm25s.stopwords import STOPWORDS_EN

from envs.qa.reward import normalize_answer
from envs.qa.text import base_title, loose_key, title_key

_TOKEN = re.compile(r"(?u)\b\w\w+\b")
_STOPWORDS = frozenset(STOPWORDS_EN)


def tokenize(text: str) -> list[str]:
    return [t for t in _TOKEN.findall(text.lower()) if t not in _STOPWORDS]


@dataclass(frozen=True)
class Page:
    """A page: its sentences (HotpotQA's own split, or ours) and, where known, the stored paragraph text."""

    title: str
    sentences: tuple[str, ...]
    paragraph: str | None = None

    @property
    def text(self) -> str:
        return " ".join(self.sentences)

    @property
    def source_text(self) -> str:
        """The text as stored (what ReAct's page splitting reads); the joined sentences where unknown."""
        return self.text if self.paragraph is None else self.paragraph


class Corpus:
    """Pages with exact/lenient title lookup and BM25 full-text search."""

    def __init__(self, pages: Sequence[Page]) -> None:
        if not pages:
            raise ValueError("the corpus is empty")
        self.pages: tuple[Page, ...] = tuple(pages)
        self._exact: dict[str, int] = {}
        self._loose: dict[str, int] = {}
        for i, page in enumerate(self.pages):
            self._exact.setdefault(title_key(page.title), i)
            self._loose.setdefault(loose_key(page.title), i)
        # Normalised page text (HotpotQA normalisation), for answer containment checks.
        self.normalized: tuple[str, ...] = tuple(normalize_answer(p.text) for p in self.pages)
        self.base_keys: tuple[str, ...] = tuple(loose_key(base_title(p.title)) for p in self.pages)
        self._vocab: dict[str, int] = {"": 0}
        doc_ids: list[list[int]] = []
        for page in self.pages:
            # The title counts twice: page names matter most for entity search.
            tokens = tokenize(f"{page.title} {page.title} {page.text}")
            doc_ids.append([self._vocab.setdefault(t, len(self._vocab)) for t in tokens] or [0])
        self._bm25 = bm25s.BM25()
        self._bm25.index(bm25s.tokenization.Tokenized(ids=doc_ids, vocab=self._vocab), show_progress=False)

    def __len__(self) -> int:
        return len(self.pages)

    def find(self, entity: str) -> int | None:
        """The page titled `entity` (case-insensitive; then ignoring accents/punctuation)."""
        idx = self._exact.get(title_key(entity))
        if idx is None:
            key = loose_key(entity)
            idx = self._loose.get(key) if key else None
        return idx

    def scores(self, query: str) -> np.ndarray | None:
        ids = [self._vocab[t] for t in tokenize(query) if t in self._vocab]
        if not ids:
            return None
        return self._bm25.get_scores(ids)

    def search(self, query: str, k: int = 5) -> list[int]:
        """Indices of the top-`k` pages by BM25 (only pages that match at all), best first."""
        scores = self.scores(query)
        if scores is None or k <= 0:
            return []
        k = min(k, len(scores))
        top = np.argpartition(-scores, k - 1)[:k]
        top = top[np.argsort(-scores[top], kind="stable")]
        return [int(i) for i in top if scores[i] > 0]

    def similar_titles(self, query: str, k: int = 5) -> list[str]:
        return [self.pages[i].title for i in self.search(query, k)]
