"""DB-bench's MySQL 8 behaviour, emulated on SQLite (AgentBench runs these tasks on ``mysql:8``).

* The table is built as AgentBench's ``_build_init_sql`` builds it: every column ``TEXT``, every
  cell ``str(value)`` (so a JSON null is the text ``None``) — here each column also gets the
  collation `COLLATION`, which stands for MySQL 8's default ``utf8mb4_0900_ai_ci``: two texts are
  equal when they are after NFKD decomposition, removal of combining marks and case folding
  (accent- and case-insensitive), with NO PAD (a trailing space counts). `register` must be called
  on every connection that compares these columns.
* Statements are rewritten lexically before SQLite runs them (`to_sqlite`): MySQL string literals,
  ``'...'`` and ``"..."`` alike (MySQL's default sql_mode has no ANSI_QUOTES), with MySQL's
  backslash escapes (``\\0 \\' \\" \\b \\n \\r \\t \\Z \\\\``; ``\\%`` and ``\\_`` keep their
  backslash; any other ``\\x`` is ``x``) and doubled quotes, become SQLite ``'...'`` literals;
  ``#`` comments are dropped; the task's own table and column names that start with a digit
  (bare words SQLite would read as a number) are back-quoted. Nothing else is translated.

Numeric comparisons of text columns and MySQL-only syntax are not modelled.
"""

from __future__ import annotations

import functools
import re
import sqlite3
import unicodedata
from collections.abc import Iterable, Sequence
from typing import Any

COLLATION = "MYSQL_AI_CI"

_ESCAPES = {"0": "\x00", "'": "'", '"': '"', "b": "\b", "n": "\n", "r": "\r", "t": "\t", "Z": "\x1a",
            "\\": "\\", "%": "\\%", "_": "\\_"}
_WORD = re.compile(r"[0-9A-Za-z_$\u0080-\uffff]+")


def _key(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch)).casefold()


_cached_key = functools.lru_cache(maxsize=65_536)(_key)


def collation_key(text: str) -> str:
    """Accent- and case-insensitive, NO PAD: NFKD, combining marks dropped, case folded."""
    return _cached_key(text) if len(text) <= 256 else _key(text)


def mysql_ai_ci(a: str, b: str) -> int:
    ka, kb = collation_key(a), collation_key(b)
    return (ka > kb) - (ka < kb)


def register(conn: sqlite3.Connection) -> None:
    conn.create_collation(COLLATION, mysql_ai_ci)


def _quote(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def build_database(table_name: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> bytes:
    """A serialized SQLite database holding the one table, every column TEXT with `COLLATION`.

    Rows shorter than the column list are padded with NULL, longer ones cut."""
    conn = sqlite3.connect(":memory:")
    try:
        register(conn)
        cols = ", ".join(f"{_quote(c)} TEXT COLLATE {COLLATION}" for c in columns)
        conn.execute(f"CREATE TABLE {_quote(table_name)} ({cols})")
        width = len(columns)
        cells = [([str(v) for v in row] + [None] * width)[:width] for row in rows]  # type: ignore[list-item]
        if width:
            conn.executemany(f"INSERT INTO {_quote(table_name)} VALUES ({', '.join('?' * width)})", cells)
        conn.commit()
        return conn.serialize()
    finally:
        conn.close()


def digit_names(names: Iterable[str]) -> frozenset[str]:
    """The names (lower-cased) that are plain words starting with a digit but not a number."""
    return frozenset(n.lower() for n in names if re.fullmatch(r"\d[0-9A-Za-z_$]*", n) and not n.isdigit())


def _literal(value: str) -> str:
    pieces = ["'" + p.replace("'", "''") + "'" for p in value.split("\x00")]
    return pieces[0] if len(pieces) == 1 else "(" + " || char(0) || ".join(pieces) + ")"


def _read_string(sql: str, start: int) -> tuple[str, int] | None:
    """The value of the MySQL string literal opening at `start` and the index after it (None: unterminated)."""
    quote = sql[start]
    out: list[str] = []
    i, n = start + 1, len(sql)
    while i < n:
        ch = sql[i]
        if ch == "\\" and i + 1 < n:
            nxt = sql[i + 1]
            out.append(_ESCAPES.get(nxt, nxt))
            i += 2
        elif ch == quote:
            if i + 1 < n and sql[i + 1] == quote:
                out.append(quote)
                i += 2
            else:
                return "".join(out), i + 1
        else:
            out.append(ch)
            i += 1
    return None


def to_sqlite(sql: str, names: frozenset[str] = frozenset(), literals: bool = True) -> str:
    """Rewrite MySQL string literals for SQLite and back-quote `names` (see the module docstring).
    With `literals` False only the names are quoted (literals, comments copied as they are)."""
    out: list[str] = []
    i, n = 0, len(sql)
    while i < n:
        ch = sql[i]
        if ch in "'\"":
            parsed = _read_string(sql, i)
            if parsed is None:  # unterminated: leave it to SQLite's error message
                out.append(sql[i:])
                break
            value, end = parsed
            out.append(_literal(value) if literals else sql[i:end])
            i = end
        elif ch == "`":
            j = i + 1
            while True:
                j = sql.find("`", j)
                if j == -1 or not sql.startswith("``", j):
                    break
                j += 2
            end = n if j == -1 else j + 1
            out.append(sql[i:end])
            i = end
        elif sql.startswith("/*", i):
            j = sql.find("*/", i + 2)
            end = n if j == -1 else j + 2
            out.append(sql[i:end])
            i = end
        elif sql.startswith("--", i) or ch == "#":
            j = sql.find("\n", i)
            end = n if j == -1 else j
            out.append(" " if ch == "#" and literals else sql[i:end])
            i = end
        else:
            m = _WORD.match(sql, i)
            if m is None:
                out.append(ch)
                i += 1
                continue
            word = m.group(0)
            out.append(_quote(word) if word.lower() in names else word)
            i = m.end()
    return "".join(out)
