"""Sentence splitting and title keys of the QA env."""

from __future__ import annotations

from envs.qa.text import base_title, loose_key, split_sentences, title_key


def test_splits_plain_sentences() -> None:
    text = 'Scott Derrickson (born July 16, 1966) is a director. He lives in Los Angeles. He made "Sinister".'
    assert split_sentences(text) == [
        "Scott Derrickson (born July 16, 1966) is a director.",
        "He lives in Los Angeles.",
        'He made "Sinister".',
    ]


def test_keeps_initials_and_abbreviations_together() -> None:
    text = "J. R. R. Tolkien served in the U.S. Army. Dr. Smith met him on Jan. 5, 1920. It was No. 1 in sales. He left."
    assert split_sentences(text) == [
        "J. R. R. Tolkien served in the U.S. Army.",
        "Dr. Smith met him on Jan. 5, 1920.",
        "It was No. 1 in sales.",
        "He left.",
    ]


def test_question_marks_quotes_and_whitespace() -> None:
    assert split_sentences("  Who?  Nobody!\n\"Then.\" (Yes) more  ") == ["Who?", "Nobody!", '"Then."', "(Yes) more"]
    assert split_sentences("") == []
    assert split_sentences("version 2.5 is out") == ["version 2.5 is out"]


def test_title_keys() -> None:
    assert title_key("Ed_Wood  (FILM)") == "ed wood (film)"
    assert loose_key("Esma Sultan Mansion, Ortaköy") == "esma sultan mansion ortakoy"
    assert loose_key("Kiss and Tell", casefold=False) == "Kiss and Tell"
    assert base_title("Kiss and Tell (1945 film)") == "Kiss and Tell"
    assert base_title("(film)") == "(film)"
