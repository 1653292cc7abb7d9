"""The QA env on its built-in data: actions, bad actions, grading, progress, expert, gym.

ReAct's own rules (the default modes) are tested in test_qa_react.py; the tests here marked
"earlier modes" check trajgym's former behaviour, kept as `observation=sentences` + `parsing=lenient`."""

from __future__ import annotations

import gymnasium
import pytest

import envs  # noqa: F401  (registers the gymnasium ids)
from envs.qa.data import QaData
from envs.qa.env import QaEnv
from envs.qa.evaluate import run_expert
from envs.types import Split


@pytest.fixture(scope="module")
def data() -> QaData:
    return QaEnv.load(None)


EARLIER_MODES = {"observation": "sentences", "parsing": "lenient"}


@pytest.fixture()
def env(data: QaData) -> QaEnv:
    e = QaEnv(data)
    e.reset(task_id="builtin-001")  # composer of The Glass Orchard → Brackwater
    return e


@pytest.fixture(scope="module")
def earlier_data() -> QaData:
    return QaEnv.load_data(None, EARLIER_MODES)


@pytest.fixture()
def earlier(earlier_data: QaData) -> QaEnv:
    """An episode in the earlier (friendlier) modes."""
    e = QaEnv(earlier_data)
    e.reset(task_id="builtin-001")
    return e


def test_builtin_data_shape(data: QaData) -> None:
    counts = data.counts()
    assert all(counts[s] > 0 for s in Split)
    assert 30 <= sum(counts.values()) <= 60
    assert 100 <= len(data.corpus) <= 200
    for task in data.tasks.values():
        assert "answer" not in task.meta  # the gold answer never leaves the server
        assert task.instruction == data.gold[task.task_id].question


def test_reset_shows_question(data: QaData) -> None:
    obs = QaEnv(data).reset(task_id="builtin-001")
    assert obs.observation == "Question: In which city was the composer of the opera The Glass Orchard born?"
    assert obs.valid_actions is None


def test_search_exact_title_shows_first_sentences(env: QaEnv) -> None:
    r = env.step("search[ilse marrow]")  # titles match case-insensitively
    assert r.observation.startswith("Ilse Marrow (1821–1889) was an Ostrenian composer")
    assert "Royal Academy of Port Elsin" in r.observation
    assert r.info["found"] is True and not r.done


def test_earlier_modes_search_miss_lists_similar_titles_and_clears_page(earlier: QaEnv) -> None:
    env = earlier
    env.step("search[Ilse Marrow]")
    r = env.step("search[Glass Orchard opera]")
    assert r.observation.startswith("Could not find Glass Orchard opera. Similar: [")
    assert "'The Glass Orchard'" in r.observation
    r = env.step("lookup[born]")
    assert "no current page" in r.observation


def test_search_disambiguation_page_vs_exact(env: QaEnv) -> None:
    assert env.step("search[The Salt Road]").observation.startswith("The Salt Road is a 1931 novel")
    assert env.step("search[The Salt Road (film)]").observation.startswith("The Salt Road is a 1958 Ostrenian drama film")


def test_earlier_modes_lookup_walks_through_sentences(earlier: QaEnv) -> None:
    env = earlier
    env.step("search[Marta Kessel]")
    first = env.step("lookup[halvard]").observation
    assert first == "(Result 1 / 1) She received the Halvard Prize in Literature in 1955."
    assert env.step("lookup[Halvard]").observation == "No more results."
    r1 = env.step("lookup[the]").observation
    r2 = env.step("lookup[the]").observation
    assert r1.startswith("(Result 1 / ") and r2.startswith("(Result 2 / ")
    assert r1 != r2
    # a new keyword starts over
    assert env.step("lookup[Osk]").observation == "(Result 1 / 1) She grew up in Osk and worked as a reporter for The Merrowgate Courier."


def test_earlier_modes_bad_actions_give_feedback_and_change_nothing(earlier: QaEnv) -> None:
    env = earlier
    r = env.step("lookup[composer]")
    assert "no current page" in r.observation and r.info["invalid_action"] and not r.done
    env.step("search[Ilse Marrow]")
    for action, expected in [("jump[high]", "Invalid action"), ("search[]", "Empty search"),
                             ("lookup[ ]", "Empty lookup")]:
        r = env.step(action)
        assert expected in r.observation and not r.done
        assert r.info["invalid_action"] is True
    assert env.page == env.data.corpus.find("Ilse Marrow")  # still on the page
    assert env.step("lookup[Brackwater]").observation.startswith("(Result 1 / 1)")
    assert env.turns == 6


def test_tool_calls_work_like_text(env: QaEnv) -> None:
    r = env.step({"name": "search", "arguments": {"entity": "Brackwater"}})
    assert r.observation.startswith("Brackwater is an industrial city")
    r = env.step({"name": "finish", "arguments": {"answer": "brackwater."}})
    assert r.done and r.reward == 1.0 and r.info["success"] is True


def test_wrong_answer_ends_episode_with_f1(env: QaEnv) -> None:
    r = env.step("finish[Brackwater Castle]")
    assert r.done and r.reward == 0.0 and r.info["success"] is False
    assert r.info["f1"] == pytest.approx(2 * 0.5 * 1.0 / 1.5)
    assert r.observation == "Episode finished, reward = 0\n"  # HotPotQAWrapper's text, newline included
    assert r.info["gold_answer"] == "Brackwater"


def test_progress_is_fraction_of_supporting_pages(env: QaEnv) -> None:
    assert env.progress() == 0.0
    assert env.step("search[Brackwater]").info["progress"] == 0.0
    assert env.step("search[The Glass Orchard]").info["progress"] == 0.5
    assert env.step("search[Ilse Marrow]").info["progress"] == 1.0


def test_turn_limit_truncates(data: QaData) -> None:
    env = QaEnv(data)
    env.reset(task_id="builtin-002")
    results = [env.step("search[Amber River]") for _ in range(QaEnv.max_turns)]
    assert results[-1].done and results[-1].truncated and results[-1].info["success"] is False
    assert not any(r.done for r in results[:-1])


def test_expert_solves_every_builtin_question_with_evidence(data: QaData) -> None:
    report = run_expert(data, data.task_ids(), keep_actions=True)
    print(report.summary())
    assert report.rate() == 1.0
    first = next(e for e in report.episodes if e.task_id == "builtin-001")
    assert first.actions == ["search[The Glass Orchard]", "search[Ilse Marrow]", "finish[Brackwater]"]


def test_expert_uses_lookup_when_answer_is_past_the_shown_sentences(data: QaData) -> None:
    from envs.qa.corpus import Corpus, Page
    from envs.qa.data import QaQuestion

    filler = tuple(f"Sentence number {k} is filler." for k in range(6))
    pages = [Page("Alpha", ("Alpha is a town.", *filler, "Its mayor is Zed Quill.")), Page("Beta", ("Beta is a village.",))]
    q = QaQuestion(qid="x", split=Split.test, question="Who is the mayor of Alpha?", answer="Zed Quill",
                   supporting_titles=["Alpha"])
    env = QaEnv(QaData([q], Corpus(pages)))
    env.reset(task_id="x")
    actions = []
    while not env.done:
        actions.append(env.expert_action())
        result = env.step(actions[-1])
    assert actions == ["search[Alpha]", "lookup[Zed Quill]", "finish[Zed Quill]"]
    assert result.info["answer_seen"] is True and result.reward == 1.0


def test_gymnasium_make(data: QaData) -> None:
    g = gymnasium.make("trajgym/Qa-v0", data=data)
    obs, info = g.reset(options={"task_id": "builtin-003"})
    assert obs.startswith("Question: ") and info["task_id"] == "builtin-003"
    obs, reward, terminated, truncated, _ = g.step("finish[Emil Varga]")
    assert reward == 1.0 and terminated and not truncated
