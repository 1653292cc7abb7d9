"""A database described in the sentences SqlGym shows its agent (sqlgym's BIRD serializer).

SqlGym's observation is ``"{description}\\n\\n{question}"``, the description being one line of
sentences: ``"{db} contains tables such as t1, t2."``, then per table ``"Table t1 has
columns such as c1, c2."`` and ``"c1 is the primary key."``, then per foreign key ``"The c1
of t1 is the foreign key of c2 of t2."`` — names lower-cased. sqlgym builds them from
BIRD's ``tables.json``; here they come from the database itself (SQLite's schema tables),
and a table without a primary key gets no primary-key sentence.
"""

from __future__ import annotations

import sqlite3


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def describe_sqlite(db_id: str, data: bytes) -> str:
    """The SqlGym-style description of the serialized SQLite database `data`."""
    conn = sqlite3.connect(":memory:")
    try:
        conn.deserialize(data)
        return describe(db_id, conn)
    finally:
        conn.close()


def describe(db_id: str, conn: sqlite3.Connection) -> str:
    tables = [r[0] for r in conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY rowid")]
    sentences = [f"{db_id} contains tables such as {', '.join(t.lower() for t in tables)}."]
    keys: dict[str, list[str]] = {}
    foreign: list[tuple[str, str, str, str | None]] = []
    for table in tables:
        columns = conn.execute(f"PRAGMA table_info({_quote(table)})").fetchall()  # cid, name, type, notnull, default, pk
        keys[table.lower()] = [c[1].lower() for c in sorted(columns, key=lambda c: c[5]) if c[5]]
        sentences.append(f"Table {table.lower()} has columns such as {', '.join(c[1].lower() for c in columns)}.")
        if keys[table.lower()]:
            sentences.append(f"{', '.join(keys[table.lower()])} is the primary key.")
        for fk in conn.execute(f"PRAGMA foreign_key_list({_quote(table)})").fetchall():  # id, seq, table, from, to, ...
            foreign.append((table.lower(), str(fk[3]).lower(), str(fk[2]).lower(), fk[4].lower() if fk[4] else None))
    for table, column, other, other_column in foreign:
        target = other_column or ", ".join(keys.get(other, [])) or "its primary key"
        sentences.append(f"The {column} of {table} is the foreign key of {target} of {other}.")
    return " ".join(sentences)
