"""The oracle: execute the gold SQL, then submit its result (or commit the gold change).

The result is submitted as JSON rows when JSON carries its values exactly and the text fits in
one action (`MAX_SUBMIT_CHARS`); otherwise the expert commits, which grades the executed query.

DB-bench questions have no trustworthy gold query (its `sql` field is MySQL and not always
right), so the expert submits the `label` directly, written so that AgentBench's comparison reads
it back (JSON, or Python's repr where JSON would not do).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from envs.sql.data import SqlGold
from envs.sql.dbbench_eval import compare_results
from envs.sql.grading import expert_answer

MAX_SUBMIT_CHARS = 10_000


def label_answer(gold: SqlGold) -> str:
    label = gold.label or []
    text = json.dumps(label, ensure_ascii=False)
    return text if compare_results(text, label, gold.task_type) else repr(label)


def next_action(gold: SqlGold, executed: Sequence[str], last_sql: str | None, last_rows: Sequence[Sequence[Any]] | None) -> str:
    """The expert's next text action, from the gold and what the session has run so far."""
    if gold.kind == "mutation":
        assert gold.sql is not None
        return "commit" if gold.sql.strip() in executed else f"execute[{gold.sql.strip()}]"
    if gold.sql is None:
        return f"submit[{label_answer(gold)}]"
    if last_sql == gold.sql.strip() and last_rows is not None:
        answer = expert_answer(last_rows)
        # A long or inexact answer: grade the executed query's result instead.
        return f"submit[{answer}]" if answer is not None and len(answer) <= MAX_SUBMIT_CHARS else "commit"
    return f"execute[{gold.sql.strip()}]"
