"""The QA loader on small files in the published formats, written to a temporary directory."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from envs.base import DataDirError
from envs.qa.data import load_qa_data
from envs.qa.env import QaEnv
from envs.types import Split


def _write(root: Path, questions: list[dict] | None = None, corpus: list[dict] | None = None,
           distractor: list[dict] | None = None) -> None:
    root.mkdir(parents=True, exist_ok=True)
    if questions is not None:
        (root / "questions.json").write_text(json.dumps(questions))
    if corpus is not None:
        (root / "corpus.jsonl").write_text("\n".join(json.dumps(r) for r in corpus) + "\n\n")
    if distractor is not None:
        (root / "distractor_sample.json").write_text(json.dumps(distractor))


QUESTIONS = [
    {"qid": "dev0001", "split": "dev", "question": "Where was Ann Lee born?", "answer": "Oldtown", "type": "bridge",
     "id": "h1"},
    {"qid": "train_x", "split": "train", "question": "Is Bo older than Cy?", "answer": "yes", "type": "comparison",
     "gold_titles": ["Bo", "Cy"]},
]
CORPUS = [
    {"title": "Ann Lee", "text": "Ann Lee is a painter. She was born in Oldtown.", "sources": ["x"]},
    {"title": "Ann Lee", "text": "Ann Lee is a painter."},  # duplicate title, shorter: dropped
    {"title": "Bo", "text": "Bo was born in 1900."},
    {"title": "Cy", "text": "Cy was born in 1950."},
]
# Original HotpotQA distractor layout: lists of pairs.
DISTRACTOR_LISTS = [
    {"_id": "h1", "question": "Where was Ann Lee born?", "answer": "Oldtown", "type": "bridge", "level": "easy",
     "supporting_facts": [["Ann Lee", 1], ["Oldtown", 0]],
     "context": [["Oldtown", ["Oldtown is a city.", " It is old."]], ["Ann Lee", ["Something else."]]]},
    {"_id": "h2", "question": "What is Oldtown?", "answer": "a city", "type": "bridge", "level": "easy",
     "supporting_facts": [["Oldtown", 0]], "context": [["Oldtown", ["Oldtown is a city."]]]},
]
# Hugging Face copy: columns.
DISTRACTOR_COLUMNS = [
    {"id": "h3", "question": "Who wrote Zed?", "answer": "Mo", "type": "bridge", "level": "hard",
     "supporting_facts": {"title": ["Zed", "Zed"], "sent_id": [0, 1]},
     "context": {"title": ["Zed", "Qua"], "sentences": [["Zed is a book.", " It was written by Mo."], ["Qua."]]}},
]


def test_reads_questions_corpus_and_merges_distractor(tmp_path: Path) -> None:
    _write(tmp_path, QUESTIONS, CORPUS, DISTRACTOR_LISTS)
    data = load_qa_data(tmp_path)
    assert sorted(data.tasks) == ["dev0001", "h2", "train_x"]
    assert data.tasks["train_x"].split == Split.train and data.tasks["h2"].split == Split.dev
    # supporting facts of the same question (by HotpotQA id) are merged, not duplicated
    assert data.gold["dev0001"].supporting_titles == ("Ann Lee", "Oldtown")
    assert data.gold["train_x"].supporting_titles == ("Bo", "Cy")
    corpus = data.corpus
    assert len(corpus) == 4  # Ann Lee (once), Bo, Cy, Oldtown from the distractor context
    ann = corpus.pages[corpus.find("Ann Lee")]
    assert ann.sentences == ("Ann Lee is a painter.", "She was born in Oldtown.")  # the longer text, split
    assert corpus.pages[corpus.find("oldtown")].sentences == ("Oldtown is a city.", "It is old.")


def test_distractor_only_in_column_format(tmp_path: Path) -> None:
    _write(tmp_path / "hotpotqa", distractor=DISTRACTOR_COLUMNS)
    data = load_qa_data(tmp_path)  # finds the hotpotqa/ sub-folder
    assert list(data.tasks) == ["h3"]
    assert data.gold["h3"].supporting_titles == ("Zed",)
    env = QaEnv(data)
    env.reset(task_id="h3")
    steps = []
    while not env.done:
        steps.append(env.expert_action())
        result = env.step(steps[-1])
    assert steps == ["search[Zed]", "finish[Mo]"] and result.reward == 1.0


def test_refuses_symlinks_out_of_the_data_dir(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    _write(outside, QUESTIONS, CORPUS)
    root = tmp_path / "data"
    root.mkdir()
    (root / "questions.json").symlink_to(outside / "questions.json")
    (root / "corpus.jsonl").write_text(json.dumps(CORPUS[0]) + "\n")
    with pytest.raises(DataDirError, match="outside"):
        load_qa_data(root)


def test_missing_or_bad_files(tmp_path: Path) -> None:
    with pytest.raises(DataDirError):
        load_qa_data(tmp_path / "nope")
    _write(tmp_path / "empty")
    with pytest.raises(DataDirError, match="no QA questions"):
        load_qa_data(tmp_path / "empty")
    _write(tmp_path / "nocorpus", QUESTIONS)
    with pytest.raises(DataDirError, match="no QA corpus"):
        load_qa_data(tmp_path / "nocorpus")
    _write(tmp_path / "bad", QUESTIONS)
    (tmp_path / "bad" / "corpus.jsonl").write_text('{"title": "A", "text": "x"}\n{"text": "no title"}\n')
    with pytest.raises(ValueError, match="line 2"):
        load_qa_data(tmp_path / "bad")
