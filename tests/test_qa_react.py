"""The QA env's default modes follow ReAct's WikiEnv (wikienv.py + wrappers.py + hotpotqa.ipynb), rule by rule.

Expected texts are written out by hand from ReAct's code, not computed with the env's helpers.
"""

from __future__ import annotations

import itertools

import pytest

from clients.env_client import AsyncEnvClient
from envs.base import StepAfterEnd
from envs.qa.corpus import Corpus, Page
from envs.qa.data import QaData, QaQuestion, context_pages
from envs.qa.env import QaEnv
from envs.qa.evaluate import run_expert
from envs.qa.text import split_sentences
from envs.types import Split
from services.app import create_app
from tests.support.server import running_server

MARTA = ("Marta Kessel (1899–1968) was a Drevanian novelist and journalist. She grew up in Osk and worked as a "
         "reporter for The Merrowgate Courier. Her best-known novel is The Salt Road, published in 1931. She "
         "received the Halvard Prize in Literature in 1955.")


@pytest.fixture(scope="module")
def data() -> QaData:
    return QaEnv.load_data(None)  # the default modes


@pytest.fixture()
def env(data: QaData) -> QaEnv:
    e = QaEnv(data)
    e.reset(task_id="builtin-001")  # composer of The Glass Orchard → Brackwater
    return e


def page(title: str, text: str) -> Page:
    """A page as `corpus.jsonl` gives it: the stored text and the corpus's own sentence split of it."""
    return Page(title, tuple(split_sentences(text)), text)


def small_env(*pages: Page, answer: str = "Zed Quill", modes: dict[str, str] | None = None) -> QaEnv:
    q = QaQuestion(qid="x", split=Split.test, question="Who is it?", answer=answer, supporting_titles=[pages[0].title])
    data = QaData([q], Corpus(list(pages)))
    data.modes = QaEnv.resolve_modes(modes)
    e = QaEnv(data)
    e.reset(task_id="x")
    return e


def test_default_modes_are_reacts(data: QaData) -> None:
    assert data.modes == {"grading": "official", "observation": "react", "parsing": "strict"}
    assert [t.text_template for t in QaEnv.tools] == ["search[{entity}]", "lookup[{keyword}]", "finish[{answer}]",
                                                      "think[{thought}]"]


# ----- think[...] ---------------------------------------------------------------------
def test_think_answers_nice_thought_and_changes_nothing(env: QaEnv) -> None:
    env.step("search[Ilse Marrow]")
    before = (env.page, set(env.visited), env.lookup_keyword, env.lookup_cursor, env.answer_seen)
    for action in ["think[The composer is Ilse Marrow.]", "Think[]", {"name": "think", "arguments": {"thought": "x"}}]:
        r = env.step(action)
        assert r.observation == "Nice thought." and not r.done and r.reward == 0.0
        assert not r.info.get("invalid_action")
    assert (env.page, set(env.visited), env.lookup_keyword, env.lookup_cursor, env.answer_seen) == before
    assert env.turns == 4


# ----- search ---------------------------------------------------------------------------
def test_found_page_shows_reacts_first_five_pieces() -> None:
    """get_page_obs: paragraphs cut at every '. ', each piece stripped and given a '.', the first five joined."""
    text = "Alpha is a town. It has a mayor. He is Zed Quill. The town is old. It has a river. Its name is Beta."
    e = small_env(page("Alpha", text))
    r = e.step("search[Alpha]")
    assert r.observation == "Alpha is a town. It has a mayor. He is Zed Quill. The town is old. It has a river."
    assert r.info["found"] is True and e.page == 0


def test_page_split_quirks_double_period_abbreviations_and_lines() -> None:
    text = "Dr. Ann Lee lived in the U.S. Army base.\nShe   left.  Then came back.\n\nIt ended (1990)."
    e = small_env(page("Alpha", text))
    # "Dr." and "U.S." are cut like any sentence; a paragraph's last piece keeps its period and gets another one.
    # five pieces: "Dr.", "Ann Lee lived in the U.S.", "Army base..", "She   left.", "Then came back.."
    assert e.step("search[Alpha]").observation == "Dr. Ann Lee lived in the U.S. Army base.. She   left. Then came back.."
    assert e.step("lookup[ended]").observation == "(Result 1 / 1) It ended (1990).."
    assert e.step("lookup[Dr]").observation == "(Result 1 / 1) Dr."


def test_a_page_of_two_words_or_fewer_shows_nothing() -> None:
    e = small_env(page("Alpha", "Alpha town."))
    r = e.step("search[Alpha]")
    assert r.observation == "" and r.info["found"] is True
    assert e.step("lookup[Alpha]").observation == "No more results.\n"


def test_distractor_pages_keep_hotpotqas_paragraph() -> None:
    record = {"context": [["Alpha", ["Alpha is a town.", " Its mayor is Zed Quill."]]]}
    (page,) = context_pages(record)
    assert page.sentences == ("Alpha is a town.", "Its mayor is Zed Quill.")
    assert page.source_text == "Alpha is a town. Its mayor is Zed Quill."
    assert small_env(page).step("search[Alpha]").observation == "Alpha is a town. Its mayor is Zed Quill.."


def test_search_miss_wording_lists_at_most_five_titles_as_python_prints_them(env: QaEnv) -> None:
    r = env.step("search[Glass Orchard opera]")
    assert r.observation.startswith("Could not find Glass Orchard opera. Similar: ['The Glass Orchard', ")
    assert r.observation.endswith("'].") and r.observation.count("', '") <= 4
    assert r.info["found"] is False and not r.info.get("invalid_action")


def test_failed_search_keeps_the_page_and_the_lookup_cursor(env: QaEnv) -> None:
    env.step("search[Ilse Marrow]")
    assert env.step("lookup[She]").observation == "(Result 1 / 2) She was born in Brackwater and studied in Merrowgate."
    env.step("search[no such page at all]")
    assert env.page == env.data.corpus.find("Ilse Marrow")
    assert env.step("lookup[She]").observation == ("(Result 2 / 2) She was the first woman admitted to the Royal "
                                                   "Academy of Port Elsin..")
    # a found page starts the lookup over
    env.step("search[Ilse Marrow]")
    assert env.step("lookup[She]").observation.startswith("(Result 1 / 2) ")


def test_empty_search_is_a_search_not_a_refusal(env: QaEnv) -> None:
    r = env.step("search[]")
    assert r.observation == "Could not find . Similar: []." and not r.info.get("invalid_action")
    r = env.step("search[ ]")  # the argument is verbatim
    assert r.observation == "Could not find  . Similar: []."


def test_search_argument_is_verbatim_in_the_miss_text(env: QaEnv) -> None:
    assert env.step("search[  zzqx ]").observation == "Could not find   zzqx . Similar: []."


# ----- lookup ------------------------------------------------------------------------------
def test_lookup_results_then_no_more_results_with_newline(data: QaData) -> None:
    e = QaEnv(data)
    e.reset(task_id="builtin-001")
    e.step("search[Marta Kessel]")
    assert e.step("lookup[Osk]").observation == ("(Result 1 / 1) She grew up in Osk and worked as a reporter for "
                                                 "The Merrowgate Courier.")
    assert e.step("lookup[Osk]").observation == "No more results.\n"
    assert e.step("lookup[Osk]").observation == "No more results.\n"
    assert e.step("lookup[1955]").observation == "(Result 1 / 1) She received the Halvard Prize in Literature in 1955.."


def test_lookup_keyword_change_of_case_starts_over(env: QaEnv) -> None:
    env.step("search[Marta Kessel]")
    assert env.step("lookup[halvard]").observation.startswith("(Result 1 / 1) She received the Halvard Prize")
    assert env.step("lookup[halvard]").observation == "No more results.\n"
    # ReAct compares keywords exactly: another case is a new lookup (the match itself ignores case)
    assert env.step("lookup[Halvard]").observation.startswith("(Result 1 / 1) She received the Halvard Prize")


def test_lookup_without_a_page_says_no_more_results(env: QaEnv) -> None:
    for action in ["lookup[composer]", "lookup[composer]", "lookup[]"]:
        r = env.step(action)
        assert r.observation == "No more results.\n" and not r.done and not r.info.get("invalid_action")
    assert env.page is None


def test_empty_lookup_matches_every_sentence(env: QaEnv) -> None:
    env.step("search[Marta Kessel]")
    first = env.step("lookup[]").observation
    assert first == "(Result 1 / 4) Marta Kessel (1899–1968) was a Drevanian novelist and journalist."
    assert env.step("lookup[]").observation.startswith("(Result 2 / 4) She grew up in Osk")


def test_lookup_keyword_is_verbatim(env: QaEnv) -> None:
    env.step("search[Marta Kessel]")
    assert env.step("lookup[ Osk ]").observation.startswith("(Result 1 / 1) She grew up in Osk and")
    assert env.step("lookup[Osk and ]").observation.startswith("(Result 1 / 1) She grew up in Osk and")
    assert env.step("lookup[Osk  and]").observation == "No more results.\n"  # two spaces: no sentence has them


def test_lookup_keyword_leading_space_is_part_of_the_needle() -> None:
    e = small_env(page("Alpha", "Osk is a town. It lies near Oskar Hill. People love Osk."))
    e.step("search[Alpha]")
    assert e.step("lookup[ Osk]").observation == "(Result 1 / 2) It lies near Oskar Hill."
    assert e.step("lookup[Osk.]").observation == "(Result 1 / 1) People love Osk.."


# ----- parsing: the harness's lower-cased first letter, then exact verbs ---------------------
def test_first_letter_is_lower_cased_then_verbs_are_case_sensitive(env: QaEnv) -> None:
    assert env.step("Search[Ilse Marrow]").observation.startswith("Ilse Marrow (1821–1889)")
    for action, shown in [("SEARCH[Ilse Marrow]", "sEARCH[Ilse Marrow]"), ("search [Ilse Marrow]", "search [Ilse Marrow]"),
                          ("jump[high]", "jump[high]"), ("  Lookup[born]  ", "Lookup[born]"),
                          ("search[Ilse Marrow", "search[Ilse Marrow"), ("Thought: search[x]", "thought: search[x]")]:
        r = env.step(action)
        assert r.observation == f"Invalid action: {shown}" and not r.done, action
        assert r.info["invalid_action"] is True
    assert env.page == env.data.corpus.find("Ilse Marrow")  # invalid actions changed nothing
    assert env.turns == 7


def test_outer_blank_space_is_stripped_after_the_first_letter(env: QaEnv) -> None:
    assert env.step("  search[Brackwater]\n").observation.startswith("Brackwater is an industrial city")


def test_the_argument_runs_to_the_last_bracket(env: QaEnv) -> None:
    r = env.step("search[Brackwater] then finish[Brackwater]")
    assert r.observation.startswith("Could not find Brackwater] then finish[Brackwater. Similar: [")
    r = env.step("finish[Brackwater]]")
    # the answer keeps the stray bracket; hotpot's normalisation drops it, so it still matches
    assert r.done and r.info["answer"] == "Brackwater]" and r.reward == 1.0


def test_search_is_tested_before_finish(env: QaEnv) -> None:
    r = env.step("search[x] finish[Brackwater]")
    assert not r.done and r.observation.startswith("Could not find x] finish[Brackwater. Similar:")


def test_finish_answer_is_verbatim_and_ends_with_reacts_text(env: QaEnv) -> None:
    r = env.step("Finish[ brackwater ]")
    assert r.done and r.reward == 1.0 and r.info["answer"] == " brackwater "
    assert r.observation == "Episode finished, reward = 1\n"


def test_wrong_or_empty_finish_reads_reward_zero(data: QaData) -> None:
    for action in ["finish[Paris]", "finish[]"]:
        e = QaEnv(data)
        e.reset(task_id="builtin-001")
        r = e.step(action)
        assert r.done and r.reward == 0.0 and r.observation == "Episode finished, reward = 0\n"


def test_step_after_finish_is_refused_by_the_api(env: QaEnv) -> None:
    """ReAct answers a step after the end with the finish text again; trajgym's API ends the episode (409)."""
    env.step("finish[Brackwater]")
    with pytest.raises(StepAfterEnd):
        env.step("search[Brackwater]")


def test_tool_calls_work_in_strict_mode(env: QaEnv) -> None:
    r = env.step({"name": "search", "arguments": {"entity": "Brackwater"}})
    assert r.observation.startswith("Brackwater is an industrial city")
    r = env.step({"name": "lookup", "arguments": {"keyword": "Ilse"}})
    assert r.observation == "(Result 1 / 1) The composer Ilse Marrow was born in Brackwater.."


# ----- the opt-in modes keep trajgym's earlier behaviour --------------------------------------
def test_lenient_parsing_refuses_and_forgives_case() -> None:
    data = QaEnv.load_data(None, {"parsing": "lenient"})
    e = QaEnv(data)
    e.reset(task_id="builtin-001")
    assert e.step("lookup[born]").info["invalid_action"] is True  # no page yet
    assert e.step("SEARCH[ Marta Kessel ]").observation.startswith("Marta Kessel (1899–1968)")
    assert e.step("search[]").info["invalid_action"] is True
    assert e.step("lookup[ ]").info["invalid_action"] is True
    assert e.step("lookup[halvard]").observation.startswith("(Result 1 / 1)")
    assert e.step("LOOKUP[Halvard]").observation == "No more results.\n"  # the same keyword, any case
    assert e.step("search[nowhere at all]").observation.startswith("Could not find nowhere at all.")
    assert e.page is not None  # observation=react: a miss keeps the page


def test_sentences_observation_uses_the_corpus_split_and_clears_the_page_on_a_miss() -> None:
    data = QaEnv.load_data(None, {"observation": "sentences"})
    e = QaEnv(data)
    e.reset(task_id="builtin-001")
    e.step("search[Marta Kessel]")
    assert e.step("lookup[1955]").observation == "(Result 1 / 1) She received the Halvard Prize in Literature in 1955."
    assert e.step("lookup[1955]").observation == "No more results."
    e.step("search[nowhere at all]")
    assert e.page is None and e.lookup_keyword is None
    assert e.step("lookup[1955]").observation == "No more results."  # parsing=strict: no refusal
    assert e.step("finish[Brackwater]").observation == "Episode finished, reward = 1"


# ----- the expert in every mode ------------------------------------------------------------------
@pytest.mark.parametrize(("observation", "parsing"), list(itertools.product(("react", "sentences"),
                                                                           ("strict", "lenient"))))
def test_expert_solves_every_builtin_question_in_every_mode(observation: str, parsing: str) -> None:
    data = QaEnv.load_data(None, {"observation": observation, "parsing": parsing})
    report = run_expert(data, data.task_ids())
    assert report.rate() == 1.0, report.summary()


def test_expert_looks_up_reacts_pieces() -> None:
    filler = " ".join(f"Sentence number {k} is filler." for k in range(6))
    text = f"Alpha is a town. {filler} Its mayor is Zed Quill."
    e = small_env(page("Alpha", text), page("Beta", "Beta is a village."))
    actions = []
    while not e.done:
        actions.append(e.expert_action())
        result = e.step(actions[-1])
    assert actions == ["search[Alpha]", "lookup[Zed Quill]", "finish[Zed Quill]"]
    assert result.info["answer_seen"] is True and result.reward == 1.0


# ----- over HTTP -----------------------------------------------------------------------------------
async def test_react_texts_over_http(data: QaData) -> None:
    with running_server(create_app(QaEnv, data=data)) as url:
        async with AsyncEnvClient(url) as client:
            info = await client.info()
            assert info.modes == {"grading": "official", "observation": "react", "parsing": "strict"}
            sid = (await client.create(task_id="builtin-001")).session_id
            assert (await client.step(sid, "SEARCH[Brackwater]")).observation == "Invalid action: sEARCH[Brackwater]"
            assert (await client.step(sid, "think[first the composer]")).observation == "Nice thought."
            assert (await client.step(sid, "lookup[x]")).observation == "No more results.\n"
            done = await client.step(sid, "Finish[Brackwater]")
            assert done.done and done.reward == 1.0 and done.observation == "Episode finished, reward = 1\n"
