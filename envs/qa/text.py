"""Text helpers: a small rule-based sentence splitter and the keys titles are matched by.

The splitter breaks after ``.``, ``!`` or ``?`` (plus closing quotes/brackets) when
whitespace and a sentence-like start follow, except after common abbreviations and
single-letter initials ("J. R. R. Tolkien", "U.S. Army", "Dr. Who").
"""

from __future__ import annotations

import re
import string
import unicodedata

_BOUNDARY = re.compile(r"[.!?][\"'”’)\]]*(?=\s+[\"'“‘(\[]?[A-Z0-9À-ÖØ-Þ])")
_ABBREVIATIONS = frozenset({
    "mr", "mrs", "ms", "dr", "prof", "st", "jr", "sr", "mt", "ft", "vs", "etc", "inc", "ltd", "co", "corp",
    "gen", "col", "lt", "sgt", "capt", "cmdr", "adm", "rev", "hon", "gov", "sen", "rep", "pres",
    "jan", "feb", "mar", "apr", "jun", "jul", "aug", "sep", "sept", "oct", "nov", "dec",
    "ca", "approx", "est", "dept", "univ", "bros", "al",
})
# Abbreviations only when a number follows: "No. 1", "Vol. 2".
_NUMBER_ABBREVIATIONS = frozenset({"no", "nos", "op", "vol", "pp", "fig"})
_WORD_BEFORE = re.compile(r"([\w.]+)$")
_PUNCT_TABLE = str.maketrans({ch: " " for ch in string.punctuation + "“”‘’–—"})


def _is_abbreviation(prefix: str, following: str) -> bool:
    m = _WORD_BEFORE.search(prefix)
    if m is None:
        return False
    word = m.group(1).rstrip(".").lower()
    if len(word) == 1 and word.isalpha():
        return True  # an initial: "J. Smith"
    if word in _NUMBER_ABBREVIATIONS:
        return following.lstrip()[:1].isdigit()
    return word in _ABBREVIATIONS or ("." in word and all(len(p) <= 2 for p in word.split(".")))


def split_sentences(text: str) -> list[str]:
    """Split a paragraph into sentences; never returns empty strings."""
    text = " ".join(text.split())
    sentences: list[str] = []
    start = 0
    for m in _BOUNDARY.finditer(text):
        end = m.end()
        if m.group(0)[0] == "." and _is_abbreviation(text[start : m.start()], text[m.end() : m.end() + 3]):
            continue
        piece = text[start:end].strip()
        if piece:
            sentences.append(piece)
        start = end
    tail = text[start:].strip()
    if tail:
        sentences.append(tail)
    return sentences


def title_key(title: str) -> str:
    """Exact-match key: case-folded, underscores as spaces, whitespace collapsed."""
    return " ".join(unicodedata.normalize("NFKC", title).replace("_", " ").casefold().split())


def loose_key(text: str, casefold: bool = True) -> str:
    """Lenient key: also without accents and punctuation (as a search engine's redirects)."""
    decomposed = unicodedata.normalize("NFKD", text.replace("_", " "))
    stripped = "".join(ch for ch in decomposed if not unicodedata.combining(ch)).translate(_PUNCT_TABLE)
    return " ".join((stripped.casefold() if casefold else stripped).split())


def base_title(title: str) -> str:
    """The title without a trailing disambiguation: "Kiss and Tell (1945 film)" → "Kiss and Tell"."""
    return re.sub(r"\s*\([^()]*\)\s*$", "", title).strip() or title
