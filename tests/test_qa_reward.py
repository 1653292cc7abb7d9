"""HotpotQA answer grading: the official normalisation, EM and F1 cases."""

from __future__ import annotations

import pytest

from envs.qa.reward import (
    contains_answer,
    exact_match,
    f1_score,
    is_yes_no,
    normalize_answer,
    score,
)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("The Beatles", "beatles"),
        ("  a  Tale of   Two Cities ", "tale of two cities"),
        ("An apple, the pear.", "apple pear"),
        ("U.S.A.", "usa"),
        ("Chief of Protocol!", "chief of protocol"),
        ("theatre", "theatre"),  # "the" only as a whole word
        ("Anna and the King", "anna and king"),
        ("", ""),
    ],
)
def test_normalize_answer_matches_official_cases(raw: str, expected: str) -> None:
    assert normalize_answer(raw) == expected


def test_exact_match_ignores_case_articles_and_punctuation() -> None:
    assert exact_match("the Chief of Protocol.", "Chief of Protocol") == 1.0
    assert exact_match("Chief Protocol", "Chief of Protocol") == 0.0
    assert exact_match("A41", "The A41") == 1.0


def test_f1_partial_overlap() -> None:
    f1, precision, recall = f1_score("Chief of State Protocol", "Chief of Protocol")
    assert precision == pytest.approx(3 / 4)
    assert recall == pytest.approx(1.0)
    assert f1 == pytest.approx(2 * 0.75 / 1.75)


def test_f1_yes_no_special_case() -> None:
    assert f1_score("yes", "no") == (0.0, 0.0, 0.0)
    assert f1_score("no", "no")[0] == 1.0
    # A yes/no gold answer gives no partial credit for an answer that merely contains the token.
    assert f1_score("no way", "no") == (0.0, 0.0, 0.0)
    assert f1_score("noanswer", "Paris") == (0.0, 0.0, 0.0)


def test_f1_no_overlap_is_zero() -> None:
    assert f1_score("Paris", "London")[0] == 0.0
    assert f1_score("the", "a")[0] == 0.0  # both normalise to nothing


def test_score_bundle_and_helpers() -> None:
    s = score("The Silvane", "Silvane River")
    assert s.em == 0.0 and 0 < s.f1 < 1
    assert is_yes_no("Yes.") and not is_yes_no("yesterday")
    assert contains_answer("born in brackwater ostrenia", "Brackwater")
    assert not contains_answer("born in brackwaters", "Brackwater")
