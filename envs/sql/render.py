"""Readable text for the agent: result tables, execution messages and database schemas."""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Sequence
from typing import Any

from envs.sql.sandbox import ExecResult, SqlLimits

MAX_SHOWN_ROWS = 30
MAX_CELL_CHARS = 80
MAX_OBSERVATION_CHARS = 6_000
_PLAIN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def cell(value: Any, width: int = MAX_CELL_CHARS) -> str:
    if value is None:
        text = "NULL"
    elif isinstance(value, bytes):
        text = f"<blob {len(value)} bytes>"
    elif isinstance(value, float):
        text = repr(value)
    else:
        text = str(value)
    text = text.replace("\n", " ").replace("\r", " ").replace("|", "\\|")
    return text if len(text) <= width else text[: width - 3] + "..."


def table(columns: Sequence[str], rows: Sequence[Sequence[Any]], max_rows: int = MAX_SHOWN_ROWS) -> str:
    """A `|`-separated text table with a header, at most `max_rows` rows."""
    lines = [" | ".join(cell(c) for c in columns), " | ".join("---" for _ in columns) if columns else "---"]
    for row in rows[:max_rows]:
        lines.append(" | ".join(cell(v) for v in row))
    return "\n".join(lines)


def execution(result: ExecResult, limits: SqlLimits) -> str:
    """Observation for one execute action."""
    if result.error:
        return f"Error: {result.error}"
    if result.columns is None:
        if result.rowcount >= 0:
            return f"OK. {result.rowcount} row{'s' if result.rowcount != 1 else ''} affected."
        return "OK."
    n = len(result.rows)
    text = table(result.columns, result.rows)
    notes: list[str] = []
    if result.truncated:
        notes.append(f"Row limit reached: the query returns more than {limits.max_rows} rows; "
                     f"only the first {limits.max_rows} were fetched.")
    if n > MAX_SHOWN_ROWS:
        notes.append(f"Showing {MAX_SHOWN_ROWS} of {n}{'+' if result.truncated else ''} rows.")
    else:
        notes.append(f"({n} row{'s' if n != 1 else ''})")
    text = text + "\n" + "\n".join(notes)
    if len(text) > MAX_OBSERVATION_CHARS:
        text = text[:MAX_OBSERVATION_CHARS] + "\n... (output cut)\n" + "\n".join(notes)
    return text


def quote_ident(name: str, quote: str = '"') -> str:
    return quote + name.replace(quote, quote * 2) + quote


def show_ident(name: str, quote: str = '"') -> str:
    """A name as the agent should write it: bare when it is a plain identifier, else quoted
    (double quotes; backticks for MySQL-style databases)."""
    return name if _PLAIN.match(name) else quote_ident(name, quote)


def schema(conn: sqlite3.Connection, sample_rows: int = 3, quote: str = '"') -> str:
    """Tables, columns with types and primary keys, foreign keys, row counts and sample rows."""
    names = [r[0] for r in conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name")]
    parts: list[str] = []
    for name in names:
        q = quote_ident(name)
        cols = conn.execute(f"PRAGMA table_info({q})").fetchall()
        pk = [c[1] for c in sorted(cols, key=lambda c: c[5]) if c[5]]
        col_text = ", ".join(f"{show_ident(c[1], quote)} {c[2] or 'ANY'}".strip() + (" PRIMARY KEY" if c[5] and len(pk) == 1 else "")
                             for c in cols)
        if len(pk) > 1:
            col_text += f", PRIMARY KEY ({', '.join(show_ident(n, quote) for n in pk)})"
        count = conn.execute(f"SELECT COUNT(*) FROM {q}").fetchone()[0]
        fks = conn.execute(f"PRAGMA foreign_key_list({q})").fetchall()
        lines = [f"Table {show_ident(name, quote)} ({count} rows): {col_text}"]
        for fk in fks:
            lines.append(f"  foreign key: {fk[3]} -> {fk[2]}.{fk[4]}")
        if sample_rows and count:
            cur = conn.execute(f"SELECT * FROM {q} LIMIT {int(sample_rows)}")
            sample = table([d[0] for d in cur.description], cur.fetchall())
            lines.append("  sample rows:\n" + "\n".join("  " + ln for ln in sample.splitlines()))
        parts.append("\n".join(lines))
    return "\n\n".join(parts)
