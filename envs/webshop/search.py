"""BM25 full-text search over the catalog (bm25s), built once and shared read-only.

Like WebShop's Lucene index: each document is the product's title, description,
first bullet point and option text (``name: v1, v2, and name: ...``), lower-cased;
terms are English-stopword-filtered and Snowball-stemmed. A query returns up to
50 products with a positive score, best first (ties by catalog order).

`special_search` is WebShop's keyword commands (engine.py
`get_top_n_product_from_keywords`), tried first on the space-split keywords:
``<r>`` 50 random products, ``<a> attribute``, ``<c> category`` and
``<q> query`` every product with that attribute / category / search query, in
catalog order.
"""

from __future__ import annotations

import random
import re
import threading
from collections.abc import Sequence

import bm25s
import numpy as np
import Stemmer
from bm25s.stopwords import STOPWORDS_EN

from envs.webshop.catalog import Product

TOP_N = 50
_TOKEN = re.compile(r"(?u)\b\w\w+\b")
_STOP = frozenset(STOPWORDS_EN)


def document_text(p: Product) -> str:
    option_text = ", and ".join(f"{name}: {', '.join(values)}" for name, values in p.options.items())
    first_bullet = p.bullet_points[0] if p.bullet_points else ""
    return f"{p.title} {p.description} {first_bullet} {option_text}".lower()


class SearchIndex:
    """Read-only after construction; `search` is safe to call from many threads."""

    def __init__(self, products: Sequence[Product]) -> None:
        self._local = threading.local()  # PyStemmer objects are not thread-safe: one per thread
        corpus = [self.tokens(document_text(p)) or [""] for p in products]
        self._bm25 = bm25s.BM25()
        self._bm25.index(corpus, show_progress=False)
        self._size = len(products)

    def tokens(self, text: str) -> list[str]:
        words = [w for w in _TOKEN.findall(text.lower()) if w not in _STOP]
        stemmer = getattr(self._local, "stemmer", None)
        if stemmer is None:
            stemmer = self._local.stemmer = Stemmer.Stemmer("english")
        return stemmer.stemWords(words)

    def search(self, query: str, top_n: int = TOP_N) -> list[int]:
        """Indexes of the best-matching products (score > 0), at most `top_n`."""
        terms = self.tokens(query)
        if not terms or self._size == 0:
            return []
        scores = np.asarray(self._bm25.get_scores(terms))
        order = np.argsort(-scores, kind="stable")[:top_n]
        return [int(i) for i in order if scores[i] > 0]


def special_search(words: Sequence[str], products: Sequence[Product], rng: random.Random) -> list[int] | None:
    """WebShop's `<r>` / `<a>` / `<c>` / `<q>` keyword commands; None when `words[0]` is none of them."""
    command = words[0] if words else ""
    rest = " ".join(words[1:]).strip()
    if command == "<r>":
        return rng.sample(range(len(products)), k=min(TOP_N, len(products)))
    if command == "<a>":
        return [i for i, p in enumerate(products) if rest in p.attributes]
    if command == "<c>":
        category = words[1].strip() if len(words) > 1 else ""
        return [i for i, p in enumerate(products) if p.category == category]
    if command == "<q>":
        return [i for i, p in enumerate(products) if p.query == rest]
    return None
