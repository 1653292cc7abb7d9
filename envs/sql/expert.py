"""The oracle: execute the gold SQL, then submit its result (or commit the gold change).

A result longer than `MAX_SUBMIT_CHARS` as JSON is graded with `commit` (the last
query's result) instead, since text actions are limited in length.

DB-bench questions have no trustworthy gold query (its `sql` field is MySQL and not
always right), so the expert submits the `label` directly.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from envs.sql.data import SqlGold

MAX_SUBMIT_CHARS = 10_000


def _json_value(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.hex()
    raise TypeError(f"cannot encode {type(value).__name__}")


def rows_to_answer(rows: Sequence[Sequence[Any]]) -> str:
    """Rows as the JSON list of lists the env's answer parser reads back."""
    return json.dumps([list(r) for r in rows], ensure_ascii=False, default=_json_value)


def next_action(gold: SqlGold, executed: Sequence[str], last_sql: str | None, last_rows: Sequence[Sequence[Any]] | None) -> str:
    """The expert's next text action, from the gold and what the session has run so far."""
    if gold.kind == "mutation":
        assert gold.sql is not None
        return "commit" if gold.sql.strip() in executed else f"execute[{gold.sql.strip()}]"
    if gold.sql is None:
        return f"submit[{json.dumps(gold.label or [], ensure_ascii=False)}]"
    if last_sql == gold.sql.strip() and last_rows is not None:
        answer = rows_to_answer(last_rows)
        # A long result would not fit in one text action: grade the executed query's result instead.
        return f"submit[{answer}]" if len(answer) <= MAX_SUBMIT_CHARS else "commit"
    return f"execute[{gold.sql.strip()}]"
