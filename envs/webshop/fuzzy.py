"""Fuzzy string scores as WebShop computes them: `thefuzz` 0.19.0's `token_set_ratio`, pure-Python backend.

WebShop pins thefuzz==0.19.0 and does not install python-Levenshtein, so its
scores come from difflib's `SequenceMatcher`. This module reproduces that
behaviour (our own implementation, standard library only):

* preprocessing (`full_process` with force_ascii): a non-string input is first
  turned into its `str()` (WebShop passes (name, value) tuples, so the goal side
  is the text ``"('size', 'x-large')"``, repr escapes such as ``\\xa0`` included);
  then the characters U+0080..U+00FF are deleted (only those: other non-ASCII
  characters stay), every non-word character (regex ``\\W``, Unicode) becomes a
  space, the text is lower-cased and stripped;
* token set ratio: the two token sets give their sorted intersection ``s`` and
  ``s + rest_a``, ``s + rest_b``; the score is the best `ratio` of the three pairs;
* `ratio(a, b)`: 100 if equal, 0 if either is empty, else
  ``round(100 * SequenceMatcher(None, a, b).ratio())`` (Python's round).

`rapidfuzz` (used elsewhere in the project) scores with the Indel distance and
does not round, which can differ from difflib's matching blocks; it is not used here.
"""

from __future__ import annotations

import re
from difflib import SequenceMatcher

_LATIN1_SUPPLEMENT = {code: None for code in range(128, 256)}
_NON_WORD = re.compile(r"\W", re.UNICODE | re.IGNORECASE)


def full_process(value: object) -> str:
    """thefuzz 0.19's `full_process(value, force_ascii=True)`."""
    text = value if type(value) is str else str(value)
    text = text.translate(_LATIN1_SUPPLEMENT)
    return _NON_WORD.sub(" ", text).lower().strip()


def ratio(a: str, b: str) -> int:
    if a == b:
        return 100
    if not a or not b:
        return 0
    return int(round(100 * SequenceMatcher(None, a, b).ratio()))


def token_set_ratio(a: object, b: object) -> int:
    """thefuzz 0.19's `fuzz.token_set_ratio(a, b)` (defaults: force_ascii, full_process)."""
    p1, p2 = full_process(a), full_process(b)
    if not p1 or not p2:
        return 0
    t1, t2 = set(p1.split()), set(p2.split())
    common = " ".join(sorted(t1 & t2))
    with_1 = (common + " " + " ".join(sorted(t1 - t2))).strip()
    with_2 = (common + " " + " ".join(sorted(t2 - t1))).strip()
    common = common.strip()
    return max(ratio(common, with_1), ratio(common, with_2), ratio(with_1, with_2))
