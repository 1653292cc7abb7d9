"""AgentBench DB-bench grading: ``DBResultProcessor.compare_results`` and the table hash
(THUDM/AgentBench @ 578c5e9, ``src/server/tasks/dbbench/result_processor.py`` and ``task.py``).

Answers (`compare_results(answer, ground_truth, query_type)`): both sides are cleaned into lists of
strings (`clean_answer`), then

* INSERT / UPDATE / DELETE: the lists must be equal;
* one value each: ``"0"`` and ``"0"`` match; two numbers (anything Python's ``float()`` reads) match
  within 0.01; otherwise the strings must be equal (case and inner spaces count);
* otherwise: when every value on both sides is a number, the same count and a greedy one-to-one
  pairing within 0.01; else the two SETS of strings must be equal (duplicates and order ignored).

Cleaning an answer string: a text that starts with ``[`` and ends with ``]`` is evaluated as a
Python expression (`envs.sql.pyliteral`, standing in for the reference's ``eval``); a list of
tuples gives the first value of each one-value tuple (others are skipped); any other list gives
each item's ``str``; a text that does not evaluate is split at commas outside quotes (quote
characters dropped). Any other text is one value. Each value is stripped, then stripped of quote
characters, then normalised (`normalize_value`): ``None`` → ``"0"``; a trailing ``%`` is removed
(and nothing else is done); commas are removed unless the value starts with ``[`` or ends with
``]``; ``none``, ``null``, ``undefined``, ``nan``, ``inf``, ``infinity``, ``-inf``, ``-infinity``
and the empty string (any case) become ``"0"``. The ground truth is the task's ``label`` list
(each item's ``str``, normalised alike). Whatever raises grades as no match.

Data changes: AgentBench hashes the task's table on MySQL with
``md5(group_concat(rowhash ORDER BY rowhash))``, ``rowhash = substring(MD5(CONCAT_WS(',', cols)), 1, 5)``,
and compares that hash with the task's ``answer_md5`` through the same `compare_results`.
`table_hash` computes the same value from the rows (NULL cells skipped; the joined hashes cut at
MySQL's default ``group_concat_max_len`` of 1,024 bytes, i.e. beyond 170 rows; ``None`` for an
empty table, which the reference reads back as the text ``None``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

from envs.sql.pyliteral import evaluate

MODIFICATION_TYPES = ("INSERT", "DELETE", "UPDATE")
FLOAT_TOLERANCE = 1e-2
GROUP_CONCAT_MAX_LEN = 1024  # MySQL's default group_concat_max_len: longer results are cut
_NO_VALUE = {"none", "null", "undefined", "nan", "inf", "infinity", "-inf", "-infinity", ""}
_QUOTES = "'\""


def normalize_value(value: Any) -> str:
    if value is None:
        return "0"
    text = str(value).strip()
    if text.endswith("%"):
        return text[:-1].strip()
    if "," in text and not text.startswith("[") and not text.endswith("]"):
        text = text.replace(",", "")
    return "0" if text.lower() in _NO_VALUE else text


def _item_text(item: Any) -> str:
    if isinstance(item, tuple) and len(item) == 1:
        item = item[0]
    return str(item).strip().strip(_QUOTES)


def _mysql_result(text: str) -> list[str] | None:
    """A text shaped like a MySQL connector result, ``[(v1,), (v2,), ...]``: its one-value tuples' values."""
    if not (text.startswith("[") and text.endswith("]")):
        return None
    try:
        value = evaluate(text)
        if isinstance(value, list) and all(isinstance(item, tuple) for item in value):
            return [str(item[0]).strip().strip(_QUOTES) for item in value if len(item) == 1]
    except Exception:
        pass
    inner = text.strip("[]")
    if inner.count("(") == 1 and inner.startswith("(") and inner.endswith(",)"):
        return [inner[1:-2].strip().strip(_QUOTES)]
    return None


def _split_outside_quotes(inner: str) -> list[str]:
    items: list[str] = []
    current = ""
    in_quotes = False
    for ch in inner:
        if ch in _QUOTES:
            in_quotes = not in_quotes
        elif ch == "," and not in_quotes:
            if current:
                items.append(normalize_value(current.strip().strip(_QUOTES)))
                current = ""
        else:
            current += ch
    if current:
        items.append(normalize_value(current.strip().strip(_QUOTES)))
    return items


def clean_answer(answer: Any) -> list[str] | None:
    """The reference's cleaned value list (``None`` where the reference's cleaning returns nothing)."""
    if answer is None:
        return ["0"]
    mysql = _mysql_result(answer) if isinstance(answer, str) else None
    if mysql is not None:
        return [normalize_value(v) for v in mysql]
    if isinstance(answer, str):
        text = answer.strip()
        if not (text.startswith("[") and text.endswith("]")):
            return [normalize_value(text.strip(_QUOTES))]
        try:
            value = evaluate(text)
            if isinstance(value, list):
                return [normalize_value(_item_text(item)) for item in value]
        except Exception:
            return _split_outside_quotes(text[1:-1])
        return None  # evaluated to something else than a list: the reference returns nothing
    if isinstance(answer, (list, tuple)):
        return [normalize_value(_item_text(item)) for item in answer]
    return [normalize_value(str(answer).strip().strip(_QUOTES))]


def _is_float(value: str) -> bool:
    try:
        float(value)
    except (ValueError, TypeError):
        return False
    return True


def _float_equal(a: str, b: str) -> bool:
    return abs(float(a) - float(b)) <= FLOAT_TOLERANCE


def compare_results(answer: Any, ground_truth: Any, query_type: str) -> bool:
    """Does the committed answer match the ground truth, as AgentBench decides (module docstring)?"""
    try:
        return _compare(clean_answer(answer), clean_answer(ground_truth), query_type)
    except Exception:
        return False


def _compare(ans: list[str] | None, gt: list[str] | None, query_type: str) -> bool:
    if query_type in MODIFICATION_TYPES:
        return ans == gt
    if ans is None or gt is None:
        raise TypeError("nothing to compare")
    if len(ans) == 1 and len(gt) == 1:
        a, g = ans[0], gt[0]
        if a == "0" and g == "0":
            return True
        if _is_float(a) and _is_float(g):
            return _float_equal(a, g)
        return a == g
    if all(_is_float(x) for x in ans) and all(_is_float(x) for x in gt):
        if len(ans) != len(gt):
            return False
        matched = [False] * len(gt)
        for a in ans:
            for i, g in enumerate(gt):
                if not matched[i] and _float_equal(a, g):
                    matched[i] = True
                    break
            else:
                return False
        return all(matched)
    return set(ans) == set(gt)


# ----- table hash ---------------------------------------------------------------------------------
def _cell_bytes(value: Any) -> bytes:
    return value if isinstance(value, bytes) else str(value).encode("utf-8", "surrogatepass")


def row_hash(row: Sequence[Any]) -> str:
    """First 5 hex digits of MD5(CONCAT_WS(',', cells)): NULL cells are skipped."""
    joined = b",".join(_cell_bytes(v) for v in row if v is not None)
    return hashlib.md5(joined).hexdigest()[:5]


def table_hash(rows: Sequence[Sequence[Any]]) -> str | None:
    """md5 of the sorted row hashes joined by ','; None (SQL NULL) for an empty table."""
    if not rows:
        return None
    joined = ",".join(sorted(row_hash(r) for r in rows))[:GROUP_CONCAT_MAX_LEN]
    return hashlib.md5(joined.encode()).hexdigest()


def committed_hash(rows: Sequence[Sequence[Any]] | None) -> str:
    """The text AgentBench compares for a data change: the hash as read back from MySQL
    (``None`` for NULL); `rows` None when the table no longer exists (the hash query fails)."""
    if rows is None:
        return "Table doesn't exist"
    value = table_hash(rows)
    return "None" if value is None else value
