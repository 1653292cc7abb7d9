"""Spider execution match, as test-suite-sql-eval grades it (``exec_eval.eval_exec_match`` with
``plug_value=False, keep_distinct=False``; taoyds/test-suite-sql-eval @ e97acc5).

What the reference does, reproduced here (our own code, same behaviour):

* Both queries are prepared the same way (`prepare`): ``> =``, ``< =`` and ``! =`` lose their inner
  space; then the query is lexed by sqlparse, only its FIRST statement is kept, and every token
  whose text is ``distinct`` (any case) is dropped — a quoted ``'distinct'``, a comment or a name
  such as ``distinct_id`` is one token and stays. Before execution ``YEAR(CURDATE())`` becomes
  ``2020`` (`executable`).
* Row order matters iff the prepared gold contains the substring ``order by`` once lower-cased
  (`order_matters`): a plain substring test, so ``ORDER  BY`` (two spaces) does not count, and an
  ``order by`` inside a subquery or a string literal does.
* Two results are equal (`result_eq`) when both are empty, or when they have the same number of
  rows and of columns, pass the reference's quick check (each row's values sorted by
  ``str(value) + str(type(value))``, compared as a list when order matters, as a set otherwise),
  and some permutation of the predicted columns makes the rows equal: as lists when order
  matters, as multisets otherwise. Values compare as Python values: ``1 == 1.0``, ``'1' != 1``,
  ``'a' != 'A'``, ``'a ' != 'a'``, NULL is ``None`` (not ``'None'``), a rounded float differs.
  Because of the quick check, an integer and an equal float that sort differently as text
  (``(1, 1.5)`` against ``(1.0, 1.5)``) do NOT match — a quirk of the reference, kept.

The reference runs both queries on every database in the gold database's folder; a trajgym task
has one database, so the verdict is on that one.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator, Sequence
from typing import Any

import sqlparse

Row = Sequence[Any]
MAX_PERMUTATION_CHECKS = 20_000  # column assignments tried before giving up (the reference has no bound)

_CUR_YEAR = re.compile(r"YEAR\s*\(\s*CURDATE\s*\(\s*\)\s*\)\s*", re.IGNORECASE)


class SpiderEvalError(ValueError):
    """The reference's preprocessing cannot handle this query (empty, or too big for sqlparse)."""


def postprocess(sql: str) -> str:
    """Join ``> =``, ``< =`` and ``! =`` as the reference does."""
    return sql.replace("> =", ">=").replace("< =", "<=").replace("! =", "!=")


def remove_distinct(sql: str) -> str:
    """The first statement, as sqlparse lexes it, without its ``distinct`` tokens."""
    try:
        statements = sqlparse.parse(sql)
    except Exception as err:  # sqlparse's own limits (nesting depth, token count)
        raise SpiderEvalError(f"sqlparse cannot parse the query: {err}") from err
    if not statements:
        raise SpiderEvalError("no SQL statement")
    return "".join(tok.value for tok in statements[0].flatten() if tok.value.lower() != "distinct")


def prepare(sql: str) -> str:
    """The query text as the reference compares it (DISTINCT removed)."""
    return remove_distinct(postprocess(sql))


def executable(prepared: str) -> str:
    """What the reference executes for a prepared query."""
    return _CUR_YEAR.sub("2020", prepared)


def order_matters(prepared_gold: str) -> bool:
    return "order by" in prepared_gold.lower()


# ----- result comparison -------------------------------------------------------------------------
def _sort_key(value: Any) -> str:
    return str(value) + str(type(value))


def _row_values_sorted(row: Row) -> tuple[Any, ...]:
    return tuple(sorted(row, key=_sort_key))


def _quick_check(gold: Sequence[Row], pred: Sequence[Row], ordered: bool) -> bool:
    g = [_row_values_sorted(r) for r in gold]
    p = [_row_values_sorted(r) for r in pred]
    return g == p if ordered else set(g) == set(p)


def _columns(rows: Sequence[Row], width: int) -> list[tuple[Any, ...]]:
    return [tuple(r[i] for r in rows) for i in range(width)]


def _assignments(gold_cols: list[tuple[Any, ...]], pred_cols: list[tuple[Any, ...]],
                 gold: Sequence[Row], pred: Sequence[Row]) -> Iterator[list[int]]:
    """Column assignments (gold column i <- pred column perm[i]) that can still make the bags equal.

    A pred column is a candidate for a gold column only when both hold the same multiset of
    values; columns holding identical values are interchangeable, so only one of them is tried
    at each position; a partial assignment is kept only while the projected row bags agree."""
    width = len(gold_cols)
    gold_counts = [Counter(c) for c in gold_cols]
    pred_counts = [Counter(c) for c in pred_cols]
    candidates = [[j for j in range(width) if pred_counts[j] == gold_counts[i]] for i in range(width)]
    if any(not c for c in candidates):
        return
    perm: list[int] = []
    used = [False] * width

    def extend(i: int) -> Iterator[list[int]]:
        if i == width:
            yield list(perm)
            return
        tried: set[tuple[Any, ...]] = set()
        for j in candidates[i]:
            if used[j] or pred_cols[j] in tried:
                continue
            tried.add(pred_cols[j])
            perm.append(j)
            used[j] = True
            if i == 0 or _bags_agree(gold, pred, perm):
                yield from extend(i + 1)
            used[j] = False
            perm.pop()

    yield from extend(0)


def _bags_agree(gold: Sequence[Row], pred: Sequence[Row], perm: list[int]) -> bool:
    k = len(perm)
    return Counter(tuple(r[:k]) for r in gold) == Counter(tuple(r[j] for j in perm) for r in pred)


def result_eq(gold: Sequence[Row], pred: Sequence[Row], ordered: bool) -> bool:
    """The reference's denotation equality of a gold and a predicted result (module docstring)."""
    if not gold and not pred:
        return True
    if len(gold) != len(pred):
        return False
    width = len(gold[0])
    if len(pred[0]) != width:
        return False
    if any(len(r) != width for r in gold) or any(len(r) != width for r in pred):
        return False
    if not _quick_check(gold, pred, ordered):
        return False
    gold_t, pred_t = [tuple(r) for r in gold], [tuple(r) for r in pred]
    gold_cols, pred_cols = _columns(gold_t, width), _columns(pred_t, width)
    if ordered:  # each gold column must equal, value for value, a distinct pred column
        return Counter(gold_cols) == Counter(pred_cols)
    target = Counter(gold_t)
    for checks, perm in enumerate(_assignments(gold_cols, pred_cols, gold_t, pred_t)):
        if checks >= MAX_PERMUTATION_CHECKS:
            return False
        if Counter(tuple(r[j] for j in perm) for r in pred_t) == target:
            return True
    return False
