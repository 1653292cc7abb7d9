"""HotpotQA answer grading: the official normalisation, exact match and token F1.

Same semantics as the official HotpotQA evaluation script (hotpotqa/hotpot @ 3635853,
``hotpot_evaluate_v1.py``): lower-case, drop ASCII punctuation, drop the articles
a/an/the, collapse whitespace; F1 is 0 when either side is yes/no/noanswer and the two
differ, or when no token is shared. An empty prediction is graded like any other.
`score` is what `QaEnv` grades ``finish[answer]`` with (and what ``conformance.hotpot`` checks).
"""

from __future__ import annotations

import re
import string
from collections import Counter

from pydantic import BaseModel

_PUNCT = frozenset(string.punctuation)
_ARTICLES = re.compile(r"\b(a|an|the)\b")
_SPECIAL = frozenset({"yes", "no", "noanswer"})


class AnswerScore(BaseModel):
    em: float
    f1: float
    precision: float
    recall: float


def normalize_answer(text: str) -> str:
    text = text.lower()
    text = "".join(ch for ch in text if ch not in _PUNCT)
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def exact_match(prediction: str, gold: str) -> float:
    return float(normalize_answer(prediction) == normalize_answer(gold))


def f1_score(prediction: str, gold: str) -> tuple[float, float, float]:
    """(f1, precision, recall) over normalised tokens, as the official script."""
    pred, ref = normalize_answer(prediction), normalize_answer(gold)
    if (pred in _SPECIAL or ref in _SPECIAL) and pred != ref:
        return 0.0, 0.0, 0.0
    pred_tokens, ref_tokens = pred.split(), ref.split()
    same = sum((Counter(pred_tokens) & Counter(ref_tokens)).values())
    if same == 0:
        return 0.0, 0.0, 0.0
    precision = same / len(pred_tokens)
    recall = same / len(ref_tokens)
    return 2 * precision * recall / (precision + recall), precision, recall


def score(prediction: str, gold: str) -> AnswerScore:
    """EM, F1, precision and recall of one answer, as `hotpot_evaluate_v1.update_answer` counts them."""
    f1, precision, recall = f1_score(prediction, gold)
    return AnswerScore(em=exact_match(prediction, gold), f1=f1, precision=precision, recall=recall)


def is_yes_no(answer: str) -> bool:
    return normalize_answer(answer) in {"yes", "no"}


def contains_answer(normalized_text: str, answer: str) -> bool:
    """Whether the normalised answer occurs as whole tokens in already-normalised text."""
    ans = normalize_answer(answer)
    if not ans:
        return False
    return f" {ans} " in f" {normalized_text} "
