"""Loading QA data: question files, a JSONL corpus and HotpotQA's distractor format.

`load_qa_data(None)` reads the built-in set under ``builtin/``; `load_qa_data(dir)`
reads the published layout (``dir/`` or ``dir/hotpotqa/``):

* ``questions.json`` — a list of ``{qid, split, question, answer, type}`` (optional
  ``id``, ``level``, ``supporting_facts`` as ``[[title, sent_id], ...]``, ``gold_titles``);
* ``corpus.jsonl`` — one ``{"title", "text"}`` paragraph per line (a repeated title
  keeps its longest text);
* ``*distractor*.json`` — HotpotQA's distractor format (``context`` and
  ``supporting_facts`` as lists of pairs, or as the ``{"title": [...], ...}`` columns
  of the Hugging Face copy). Its questions join the task list (or add supporting
  facts to the same question already listed) and its context paragraphs join the corpus.

Files are only read inside the data directory, through `envs.base.DataDir`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from envs.base import DataDir, DataDirError, EnvData, as_data_dir
from envs.qa.corpus import Corpus, Page
from envs.qa.text import split_sentences, title_key
from envs.types import Split, TaskSpec

BUILTIN_DIR = Path(__file__).resolve().parent / "builtin"
QUESTIONS_FILE = "questions.json"
CORPUS_FILE = "corpus.jsonl"
DISTRACTOR_GLOB = "*distractor*.json"


class QaQuestion(BaseModel):
    """One question as the env uses it (gold answer stays server-side, never in task meta)."""

    qid: str = Field(min_length=1)
    split: Split = Split.dev
    question: str = Field(min_length=1)
    answer: str
    type: str = ""
    level: str | None = None
    source: str = ""
    hotpot_id: str | None = None
    supporting_titles: list[str] = Field(default_factory=list)


class CorpusRecord(BaseModel):
    title: str = Field(min_length=1)
    text: str


@dataclass(frozen=True)
class QaGold:
    question: str
    answer: str
    type: str
    supporting_titles: tuple[str, ...]


class QaData(EnvData):
    """Shared, read-only: the corpus with its BM25 index, and the gold answers by task id."""

    def __init__(self, questions: list[QaQuestion], corpus: Corpus) -> None:
        tasks = [
            TaskSpec(task_id=q.qid, split=q.split, instruction=q.question,
                     meta={"type": q.type, "level": q.level, "source": q.source,
                           "has_supporting_facts": bool(q.supporting_titles)})
            for q in questions
        ]
        super().__init__(tasks)
        self.corpus = corpus
        self.gold: dict[str, QaGold] = {
            q.qid: QaGold(q.question, q.answer, q.type, tuple(q.supporting_titles)) for q in questions
        }


# ----- file access ------------------------------------------------------------------
def _data_root(data_dir: str | Path | DataDir) -> DataDir:
    root = as_data_dir(data_dir)
    if root.path("hotpotqa").is_dir() and not root.exists(QUESTIONS_FILE):
        return root.sub("hotpotqa")
    return root


# ----- record parsing ---------------------------------------------------------------
def _supporting_titles(record: dict[str, Any]) -> list[str]:
    facts = record.get("supporting_facts")
    titles: list[str] = []
    if isinstance(facts, dict):  # Hugging Face columns: {"title": [...], "sent_id": [...]}
        titles = [str(t) for t in facts.get("title", [])]
    elif isinstance(facts, list):  # original: [[title, sent_id], ...]
        titles = [str(f[0]) for f in facts if isinstance(f, (list, tuple)) and f]
    if not titles and isinstance(record.get("gold_titles"), list):
        titles = [str(t) for t in record["gold_titles"]]
    return list(dict.fromkeys(titles))


def question_from_record(record: dict[str, Any], default_split: Split = Split.dev) -> QaQuestion:
    hotpot_id = record.get("id") or record.get("_id")
    return QaQuestion(
        qid=str(record.get("qid") or hotpot_id or ""),
        split=record.get("split") or default_split,
        question=str(record.get("question", "")),
        answer=str(record.get("answer", "")),
        type=str(record.get("type") or ""),
        level=record.get("level"),
        source=str(record.get("source") or ""),
        hotpot_id=str(hotpot_id) if hotpot_id else None,
        supporting_titles=_supporting_titles(record),
    )


def context_pages(record: dict[str, Any]) -> list[Page]:
    """The paragraphs of one distractor-format record, with HotpotQA's own sentence split."""
    context = record.get("context") or []
    if isinstance(context, dict):  # {"title": [...], "sentences": [[...], ...]}
        pairs = list(zip(context.get("title", []), context.get("sentences", [])))
    else:  # [[title, [sentence, ...]], ...]
        pairs = [(c[0], c[1]) for c in context if isinstance(c, (list, tuple)) and len(c) == 2]
    pages = []
    for title, sentences in pairs:
        raw = [s for s in sentences if isinstance(s, str)]
        sents = tuple(s.strip() for s in raw if s.strip())
        if title and sents:
            pages.append(Page(str(title), sents, "".join(raw)))  # HotpotQA's sentences join into the paragraph
    return pages


def read_corpus(path: Path) -> list[Page]:
    """JSONL paragraphs → pages; a repeated title keeps its longest text."""
    best: dict[str, CorpusRecord] = {}
    with path.open(encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                rec = CorpusRecord.model_validate_json(line)
            except ValueError as err:
                raise ValueError(f"{path.name} line {n}: {err}") from err
            key = title_key(rec.title)
            if key not in best or len(rec.text) > len(best[key].text):
                best[key] = rec
    return [Page(r.title, tuple(split_sentences(r.text)), r.text) for r in best.values() if r.text.strip()]


def _read_json_list(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as fh:
        records = json.load(fh)
    if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
        raise ValueError(f"{path.name}: expected a JSON list of objects")
    return records


# ----- assembly ---------------------------------------------------------------------
def load_dir(data_dir: str | Path | DataDir) -> tuple[list[QaQuestion], list[Page]]:
    root = as_data_dir(data_dir)
    questions: list[QaQuestion] = []
    pages: list[Page] = []
    if root.exists(QUESTIONS_FILE):
        questions = [question_from_record(r) for r in _read_json_list(root.file(QUESTIONS_FILE))]
    if root.exists(CORPUS_FILE):
        pages = read_corpus(root.file(CORPUS_FILE))
    by_hotpot = {q.hotpot_id: q for q in questions if q.hotpot_id}
    by_text = {q.question: q for q in questions}
    seen_ids = {q.qid for q in questions}
    seen_titles = {title_key(p.title) for p in pages}
    for dfile in root.glob(DISTRACTOR_GLOB):
        for record in _read_json_list(dfile):
            q = question_from_record(record, Split.dev)
            known = by_hotpot.get(q.hotpot_id) if q.hotpot_id else None
            known = known or by_text.get(q.question)
            if known is not None:
                if not known.supporting_titles:
                    known.supporting_titles = q.supporting_titles
            elif q.qid not in seen_ids:
                questions.append(q)
                seen_ids.add(q.qid)
            for page in context_pages(record):
                if title_key(page.title) not in seen_titles:
                    seen_titles.add(title_key(page.title))
                    pages.append(page)
    if not questions:
        raise DataDirError(f"no QA questions in {root} (expected {QUESTIONS_FILE} or {DISTRACTOR_GLOB})")
    if not pages:
        raise DataDirError(f"no QA corpus in {root} (expected {CORPUS_FILE} or distractor contexts)")
    return questions, pages


def load_qa_data(data_dir: str | Path | DataDir | None = None) -> QaData:
    root = DataDir(BUILTIN_DIR) if data_dir is None else _data_root(data_dir)
    questions, pages = load_dir(root)
    return QaData(questions, Corpus(pages))
