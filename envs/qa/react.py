"""ReAct's Wikipedia environment, as text rules: how it reads an action, splits a page, words its answers.

Written from ysymyth/ReAct ``wikienv.py`` (``WikiEnv.step``, ``get_page_obs``,
``construct_lookup_list``), ``wrappers.py`` (``HotPotQAWrapper``) and ``hotpotqa.ipynb``
(the harness lower-cases an action's first character before the env sees it):

* an action is the text after that lower-casing, stripped; it is ``verb[argument]``
  only when it starts with ``search[``, ``lookup[``, ``finish[`` or ``think[`` (checked
  in that order, case-sensitively) and ends with ``]``; the argument is everything in
  between, verbatim. Anything else is answered ``Invalid action: {action}``.
* a page is its paragraphs (a paragraph of two words or fewer is not part of it), each
  split at every ``". "``; each piece is stripped and gets a ``"."`` appended (so a
  paragraph's final sentence ends in ``".."``). A found page shows its first five pieces.
* the fixed answers: ``No more results.\\n``, ``Nice thought.``,
  ``Episode finished, reward = N\\n`` and ``Could not find X. Similar: [...].``.
"""

from __future__ import annotations

from envs.actions import UnknownActionForm
from envs.types import Action

PAGE_SENTENCES = 5
NO_MORE_RESULTS = "No more results.\n"
NICE_THOUGHT = "Nice thought."
# (verb, its argument's name), in the order WikiEnv.step tests them.
VERBS: tuple[tuple[str, str], ...] = (("search", "entity"), ("lookup", "keyword"), ("finish", "answer"),
                                      ("think", "thought"))


class InvalidReactAction(UnknownActionForm):
    """Text that is none of ReAct's actions; `action` is the text as the env saw it."""

    def __init__(self, action: str) -> None:
        super().__init__(f"{action[:200]!r} is not search[...], lookup[...], finish[...] or think[...]")
        self.action = action


def harness_text(raw: str) -> str:
    """The action as WikiEnv receives it: first character lower-cased (hotpotqa.ipynb), then stripped."""
    return (raw[:1].lower() + raw[1:]).strip()


def parse_react(text: str) -> Action:
    """`text` (already through `harness_text`) as WikiEnv.step reads it; raises `InvalidReactAction`."""
    for verb, param in VERBS:
        opening = f"{verb}["
        if text.startswith(opening) and text.endswith("]"):
            return Action(name=verb, arguments={param: text[len(opening):-1]}, text=text)
    raise InvalidReactAction(text)


def invalid_action(action: str) -> str:
    return f"Invalid action: {action}"


def page_sentences(paragraph_text: str) -> tuple[str, ...]:
    """The sentences WikiEnv cuts a page into, for a page made of one stored paragraph text.

    ReAct builds its page from the Wikipedia page's paragraphs of more than two words
    (counted by single spaces), one per line; the stored text stands for one such paragraph."""
    text = paragraph_text.strip()
    if len(text.split(" ")) <= 2:
        return ()
    pieces: list[str] = []
    for paragraph in text.split("\n"):
        for piece in paragraph.strip().split(". "):
            if piece.strip():
                pieces.append(piece.strip() + ".")
    return tuple(pieces)


def page_observation(sentences: tuple[str, ...]) -> str:
    return " ".join(sentences[:PAGE_SENTENCES])


def lookup_matches(sentences: tuple[str, ...], keyword: str) -> list[str]:
    """The sentences holding `keyword`, compared in lower case (an empty keyword holds everywhere)."""
    needle = keyword.lower()
    return [s for s in sentences if needle in s.lower()]


def lookup_result(k: int, n: int, sentence: str) -> str:
    return f"(Result {k} / {n}) {sentence}"


def not_found(entity: str, similar: list[str]) -> str:
    """A search with no page: the entity as given and up to five titles, as Python prints a list."""
    return f"Could not find {entity}. Similar: {similar[:5]}."


def finished(reward: int, newline: bool = True) -> str:
    return f"Episode finished, reward = {reward}" + ("\n" if newline else "")
