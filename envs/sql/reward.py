"""Lenient grading (mode ``grading=lenient``) by execution result and by table comparison.

The default, official grading is in `envs.sql.grading` (Spider's and AgentBench's own rules); this
module is trajgym's tolerant comparison, kept as a named mode, plus the table snapshots both use.

Values are normalised before comparison: strings are stripped, lower-cased and
whitespace-collapsed; a string that reads as a number becomes that number (so
``'1.0'`` equals ``1``); NULL, ``'null'`` and ``'none'`` are one value; numbers
match within a relative tolerance of 1e-4 (absolute 1e-6).

* Query results (`rows_match`): same number of rows, each row the same values in
  the same column order; rows compared as a multiset, or as a sequence when the
  gold query has a top-level ORDER BY.
* Submitted answers (`submission_matches`, rule documented in `envs.sql.answer`
  for parsing): a single gold value also matches the whole answer text; rows of
  the gold's width are compared as rows; anything else is compared as the
  flattened list of values (row-major), as a multiset unless the gold orders.
* Data changes (`snapshots_match`): every user table of the database — same
  tables, same column names, same rows as a multiset (rowids ignored); values normalised as
  above, or (``exact=True``, official grading of the built-in tasks) equal as Python values.
"""

from __future__ import annotations

import math
import sqlite3
from collections import Counter
from collections.abc import Sequence
from typing import Any

from envs.sql.answer import parse_answer

REL_TOL = 1e-4
ABS_TOL = 1e-6
_NULL = "\x00null"
_GREEDY_MAX = 400

Value = float | str
Snapshot = dict[str, tuple[list[str], list[tuple[Any, ...]]]]


def normalise(value: Any) -> Value:
    if value is None:
        return _NULL
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, bytes):
        return value.hex()
    text = " ".join(str(value).split()).lower()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"`":
        text = text[1:-1].strip()
    if text in ("null", "none"):
        return _NULL
    try:
        number = float(text)
    except ValueError:
        return text
    return number if math.isfinite(number) else text


def values_equal(a: Value, b: Value) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=REL_TOL, abs_tol=ABS_TOL)
    return a == b


def _key(row: tuple[Value, ...]) -> tuple[Any, ...]:
    return tuple((0, float(f"{v:.3g}"), "") if isinstance(v, float) else (1, 0.0, v) for v in row)


def _rows_equal(a: Sequence[tuple[Value, ...]], b: Sequence[tuple[Value, ...]]) -> bool:
    return all(len(x) == len(y) and all(values_equal(u, v) for u, v in zip(x, y)) for x, y in zip(a, b))


def _normal_rows(rows: Sequence[Sequence[Any]]) -> list[tuple[Value, ...]]:
    return [tuple(normalise(v) for v in row) for row in rows]


def _identical(pred: Sequence[Sequence[Any]], gold: Sequence[Sequence[Any]], ordered: bool) -> bool:
    try:
        a, b = [tuple(r) for r in pred], [tuple(r) for r in gold]
        return a == b if ordered else Counter(a) == Counter(b)
    except TypeError:  # an unhashable value: leave it to the normalised comparison
        return False


def rows_match(pred: Sequence[Sequence[Any]], gold: Sequence[Sequence[Any]], ordered: bool = False) -> bool:
    """Execution-result equality of two row lists (see module docstring)."""
    if len(pred) != len(gold):
        return False
    if _identical(pred, gold, ordered):  # fast path: raw values already equal
        return True
    p, g = _normal_rows(pred), _normal_rows(gold)
    if len(p) != len(g):
        return False
    if ordered:
        return _rows_equal(p, g)
    if _rows_equal(sorted(p, key=_key), sorted(g, key=_key)):
        return True
    if len(g) > _GREEDY_MAX:  # sorted comparison is exact unless values sit at a rounding boundary
        return False
    unmatched = list(p)
    for row in g:
        for i, cand in enumerate(unmatched):
            if _rows_equal([cand], [row]):
                del unmatched[i]
                break
        else:
            return False
    return True


def flatten(items: Sequence[Any]) -> list[Any]:
    out: list[Any] = []
    for item in items:
        if isinstance(item, (list, tuple)):
            out.extend(item)
        else:
            out.append(item)
    return out


def values_match(pred: Sequence[Any], gold: Sequence[Any], ordered: bool = False) -> bool:
    """Flat value lists, compared as multisets (or sequences)."""
    return rows_match([(v,) for v in pred], [(v,) for v in gold], ordered)


def submission_matches(answer: str, gold_rows: Sequence[Sequence[Any]], ordered: bool = False) -> bool:
    """Does a submitted answer text equal the gold rows? (rule in the module docstring)"""
    gold_flat = flatten(gold_rows)
    if len(gold_flat) == 1 and len(gold_rows) == 1 and values_equal(normalise(answer.strip().strip("[]()")), normalise(gold_flat[0])):
        return True
    parsed = parse_answer(answer)
    width = len(gold_rows[0]) if gold_rows else 0
    as_rows = parsed and all(isinstance(r, list) and len(r) == width for r in parsed)
    if as_rows and rows_match(parsed, gold_rows, ordered):
        return True
    return values_match(flatten(parsed), gold_flat, ordered)


def label_matches(pred_values: Sequence[Any], label: Sequence[Any]) -> bool:
    """DB-bench: the answer's values against the label's values, as multisets."""
    return values_match(pred_values, label, ordered=False)


def snapshot(conn: sqlite3.Connection) -> Snapshot:
    """Every user table: column names and all rows (ordered by rowid where there is one)."""
    tables = [r[0] for r in conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name")]
    out: Snapshot = {}
    for name in tables:
        cur = conn.execute(f'SELECT * FROM "{name.replace(chr(34), chr(34) * 2)}"')
        out[name.lower()] = ([d[0].lower() for d in cur.description], cur.fetchall())
    return out


def _bags_equal(a: Sequence[Sequence[Any]], b: Sequence[Sequence[Any]]) -> bool:
    try:
        return Counter(tuple(r) for r in a) == Counter(tuple(r) for r in b)
    except TypeError:
        return False


def snapshots_match(actual: Snapshot, expected: Snapshot, exact: bool = False) -> tuple[bool, str]:
    """Compare two database states table by table; returns (equal, reason when not)."""
    if set(actual) != set(expected):
        missing, extra = sorted(set(expected) - set(actual)), sorted(set(actual) - set(expected))
        return False, f"tables differ (missing: {missing}, unexpected: {extra})"
    for name, (cols, rows) in expected.items():
        a_cols, a_rows = actual[name]
        if a_cols != cols:
            return False, f"columns of table {name!r} differ"
        if len(a_rows) != len(rows):
            return False, f"table {name!r} has {len(a_rows)} rows, expected {len(rows)}"
        if not (_bags_equal(a_rows, rows) if exact else rows_match(a_rows, rows)):
            return False, f"rows of table {name!r} differ"
    return True, ""
