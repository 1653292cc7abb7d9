"""Light SQL text handling: code fences, splitting at `;`, top-level ORDER BY.

No SQL is interpreted here beyond what SQLite's own `complete_statement` tells
(quotes and comments are respected when splitting).
"""

from __future__ import annotations

import re
import sqlite3

_FENCE = re.compile(r"```[ \t]*(?:sql|sqlite|mysql|postgresql)?[ \t]*\n?(.*?)```", re.IGNORECASE | re.DOTALL)
_ORDER_BY = re.compile(r"\border\s+by\b", re.IGNORECASE)


def find_sql_block(text: str) -> str | None:
    """The content of the first ```sql fenced block in `text`, if any."""
    m = _FENCE.search(text)
    if m is None:
        return None
    body = m.group(1).strip()
    return body or None


def strip_fences(sql: str) -> str:
    """`execute[```sql ...```]` → the SQL inside; other text unchanged (stripped)."""
    block = find_sql_block(sql)
    return block if block is not None and sql.strip().startswith("```") else sql.strip()


def split_statements(sql: str) -> list[str]:
    """Split at `;` boundaries SQLite considers complete (not inside strings, comments)."""
    out: list[str] = []
    current = ""
    for piece in sql.split(";"):
        current += piece + ";"
        if sqlite3.complete_statement(current):
            stmt = current.strip().rstrip(";").strip()
            if _has_code(stmt):
                out.append(stmt)
            current = ""
    tail = current[:-1].strip()  # the last piece got an extra ";"
    if _has_code(tail):
        out.append(tail)
    return out


def _has_code(stmt: str) -> bool:
    return bool(strip_literals(stmt).strip(" \t\r\n;"))


def strip_literals(sql: str) -> str:
    """Blank out string literals, quoted identifiers and comments (for keyword checks)."""
    out: list[str] = []
    i, n = 0, len(sql)
    while i < n:
        ch = sql[i]
        if ch in "'\"`[":
            close = "]" if ch == "[" else ch
            j = sql.find(close, i + 1)
            while j != -1 and close != "]" and j + 1 < n and sql[j + 1] == close:
                j = sql.find(close, j + 2)
            i = n if j == -1 else j + 1
            out.append(" _ ")
        elif sql.startswith("--", i):
            j = sql.find("\n", i)
            i = n if j == -1 else j
        elif sql.startswith("/*", i):
            j = sql.find("*/", i + 2)
            i = n if j == -1 else j + 2
        else:
            out.append(ch)
            i += 1
    return "".join(out)


def has_top_level_order_by(sql: str) -> bool:
    """True when ORDER BY appears outside any parentheses (the result order is then part of the answer)."""
    text = strip_literals(sql)
    depth = 0
    flat: list[str] = []
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth = max(0, depth - 1)
        flat.append(ch if depth == 0 else " ")
    return _ORDER_BY.search("".join(flat)) is not None
