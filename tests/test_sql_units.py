"""Unit tests of the SQL env's pieces: SQL text handling, answer parsing, grading, generator, loaders."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest

from envs.actions import UnknownActionForm
from envs.base import DataDir, DataDirError
from envs.sql import generator, mysql_compat
from envs.sql.answer import parse_answer
from envs.sql.data import (
    DbBenchTable,
    dbbench_database,
    load_builtin,
    load_dir,
    mysql_names_quoted,
)
from envs.sql.env import SqlEnv
from envs.sql.reward import (
    normalise,
    rows_match,
    snapshot,
    snapshots_match,
    submission_matches,
    values_match,
)
from envs.sql.statements import (
    find_sql_block,
    has_top_level_order_by,
    split_statements,
    strip_fences,
)
from envs.types import ToolCall


# ----- statements ------------------------------------------------------------------------
def test_split_statements_respects_quotes_and_comments() -> None:
    sql = "SELECT ';' AS a; UPDATE t SET x = 'a;b' /* ; */; -- trailing ;\n SELECT 2"
    assert split_statements(sql) == ["SELECT ';' AS a", "UPDATE t SET x = 'a;b' /* ; */", "-- trailing ;\n SELECT 2"]
    assert split_statements("  ;;  ") == []
    assert split_statements("SELECT 1; -- nothing") == ["SELECT 1"]


def test_top_level_order_by() -> None:
    assert has_top_level_order_by("SELECT a FROM t ORDER  BY a DESC")
    assert not has_top_level_order_by("SELECT a FROM (SELECT a FROM t ORDER BY a LIMIT 3)")
    assert not has_top_level_order_by("SELECT 'order by' FROM t")


def test_sql_fences() -> None:
    assert find_sql_block("I will look.\n```sql\nSELECT 1;\n```\nthanks") == "SELECT 1;"
    assert find_sql_block("no block here") is None
    assert strip_fences("```sql\nSELECT 2\n```") == "SELECT 2"
    assert strip_fences(" SELECT 3 ") == "SELECT 3"


# ----- answers ------------------------------------------------------------------------------
@pytest.mark.parametrize(("text", "expected"), [
    ('[["a", 1], ["b", 2]]', [["a", 1], ["b", 2]]),
    ("[('Paris', 3), ('Rome', 2)]", [["Paris", "3"], ["Rome", "2"]]),
    ("Paris, Rome", ["Paris", "Rome"]),
    ("42", [42]),
    ("a | 1\nb | 2", [["a", "1"], ["b", "2"]]),
    ("['O''Brien', None]", ["O'Brien", None]),
    ("[]", []),
    ("Women +60kg Bronze", ["Women +60kg Bronze"]),
    ("'Smith, John', 'Doe, Jane'", ["Smith, John", "Doe, Jane"]),
])
def test_parse_answer(text: str, expected: list) -> None:
    assert parse_answer(text) == expected


# ----- grading ------------------------------------------------------------------------------
def test_normalise() -> None:
    assert normalise("  Hello   World ") == "hello world"
    assert normalise("1.0") == normalise(1) == 1.0
    assert normalise(None) == normalise("NULL") == normalise("none")
    assert normalise("nan") == "nan"


def test_rows_match_order_and_tolerance() -> None:
    gold = [("a", 1), ("b", 2.0)]
    assert rows_match([("B", 2), ("a", "1.0")], gold)
    assert not rows_match([("B", 2), ("a", "1.0")], gold, ordered=True)
    assert rows_match([("a", 1.00001), ("b", 2)], gold, ordered=True)
    assert not rows_match([("a", 1.01), ("b", 2)], gold)
    assert not rows_match([("a", 1)], gold)
    assert not rows_match([("a", 1), ("a", 1)], [("a", 1), ("b", 1)])  # multiset, not set
    assert not rows_match([(1, "a"), (2, "b")], gold)  # column order matters


def test_submission_rule() -> None:
    assert submission_matches("[[\"a\", 1], [\"b\", 2]]", [("b", 2), ("a", 1)])
    assert submission_matches("a, 1, b, 2", [("a", 1), ("b", 2)])  # flat values
    assert not submission_matches("a, b", [("a", 1), ("b", 2)])
    assert submission_matches("Smith, John", [("Smith, John",)])  # whole text against a single value
    assert submission_matches("[3.0]", [(3,)])
    assert not submission_matches("4", [(3,)])
    assert not submission_matches("b, a", [("a",), ("b",)], ordered=True)
    assert submission_matches("[]", [])
    assert not submission_matches("[]", [("a",)])
    assert values_match(["x", "1"], [1, "X"])


def test_snapshot_comparison() -> None:
    def db(*stmts: str) -> sqlite3.Connection:
        c = sqlite3.connect(":memory:")
        c.executescript("CREATE TABLE t (a INTEGER, b TEXT); INSERT INTO t VALUES (1, 'x'), (2, 'y');" + ";".join(stmts))
        return c

    assert snapshots_match(snapshot(db()), snapshot(db()))[0]
    assert snapshots_match(snapshot(db("DELETE FROM t WHERE a = 1", "INSERT INTO t VALUES (1, 'x')")), snapshot(db()))[0]
    ok, reason = snapshots_match(snapshot(db("UPDATE t SET b = 'z' WHERE a = 2")), snapshot(db()))
    assert not ok and "rows" in reason
    ok, reason = snapshots_match(snapshot(db("CREATE TABLE u (x)")), snapshot(db()))
    assert not ok and "tables" in reason
    ok, _ = snapshots_match(snapshot(db("DELETE FROM t WHERE a = 2")), snapshot(db()))
    assert not ok


# ----- generator and loaders ------------------------------------------------------------------
def test_generator_is_deterministic_and_valid() -> None:
    dbs1, tasks1 = generator.generate()
    dbs2, tasks2 = generator.generate()
    assert dbs1 == dbs2 and tasks1 == tasks2
    assert sum(len(b) for b in dbs1.values()) < 1_000_000
    kinds = {t.kind for t in tasks1}
    assert kinds == {"query", "mutation"}
    assert len({t.task_id for t in tasks1}) == len(tasks1)
    data = load_builtin()
    counts = data.counts()
    assert all(n > 10 for n in counts.values())
    for t in data.tasks.values():
        assert "gold" not in str(t.meta).lower() and data.gold[t.task_id].sql not in str(t.meta)
    # every statement kind is represented among the data-changing tasks
    stmts = " ".join(t.gold.split()[0].upper() for t in tasks1 if t.kind == "mutation")
    assert {"INSERT", "UPDATE", "DELETE"} <= set(stmts.split())


def test_loader_refuses_paths_outside_root(tmp_path: Path) -> None:
    root = tmp_path / "data"
    (root / "spider" / "database").mkdir(parents=True)
    outside = tmp_path / "secret.sqlite"
    sqlite3.connect(outside).execute("CREATE TABLE s (x)").connection.commit()
    with pytest.raises(DataDirError, match="leaves"):
        DataDir(root).path("../secret.sqlite")
    os.symlink(outside, root / "spider" / "database" / "evil.sqlite")
    (root / "spider" / "questions.json").write_text('[{"db": "evil", "query": "q", "gold": "SELECT 1"}]')
    with pytest.raises(DataDirError, match="outside"):
        load_dir(root)
    (root / "spider" / "questions.json").write_text('[{"db": "../secret", "query": "q", "gold": "SELECT 1"}]')
    with pytest.raises(ValueError):  # the db name must be a plain name
        load_dir(root)


def test_loader_reads_minimal_formats(tmp_path: Path) -> None:
    root = tmp_path / "sql"
    (root / "spider" / "database").mkdir(parents=True)
    conn = sqlite3.connect(root / "spider" / "database" / "tiny.sqlite")
    conn.executescript("CREATE TABLE pets (name TEXT, age INTEGER); INSERT INTO pets VALUES ('Rex', 3), ('Tom', 5);")
    conn.close()
    (root / "spider" / "questions.json").write_text(
        '[{"db": "tiny", "query": "Oldest pet?", "gold": "SELECT name FROM pets ORDER BY age DESC LIMIT 1", "hardness": "easy"}]')
    (root / "dbbench").mkdir()
    (root / "dbbench" / "standard.jsonl").write_text(
        '{"description": "How many?", "label": ["2"], "type": ["counting"], "table": {"table_name": "T 1", "table_info": '
        '{"columns": [{"name": "a b", "type": "INT"}], "rows": [["1"], ["2"]]}}}\n')
    data = load_dir(root)
    assert sorted(data.tasks) == ["dbbench-standard-000", "spider-tiny-0000"]
    assert data.gold["spider-tiny-0000"].ordered
    assert data.gold["dbbench-standard-000"].label == ["2"]
    assert "`T 1`" in data.databases["dbbench/standard/000"].schema  # DB-bench names shown the MySQL way


def test_dbbench_table_and_mysql_gold() -> None:
    """AgentBench builds every column TEXT with str(value) cells; digit-leading names are back-quoted."""
    table = DbBenchTable.model_validate({"table_name": "1952_Grand_Prix", "table_info": {
        "columns": [{"name": "Pos", "type": "INT"}, {"name": "Driver", "type": "weird; DROP"}], "rows": [[1, "Ann"], ["2"]]}})
    conn = sqlite3.connect(":memory:")
    conn.deserialize(dbbench_database(table))
    mysql_compat.register(conn)
    stmt = mysql_names_quoted("INSERT INTO 1952_Grand_Prix (Pos, Driver) VALUES (3, 'Bo')", table)
    assert stmt == "INSERT INTO `1952_Grand_Prix` (Pos, Driver) VALUES (3, 'Bo')"
    conn.execute(stmt)
    assert conn.execute("SELECT Pos, Driver FROM `1952_Grand_Prix` ORDER BY Pos").fetchall() == [("1", "Ann"), ("2", None), ("3", "Bo")]
    assert conn.execute("SELECT COUNT(*) FROM `1952_Grand_Prix` WHERE Driver = 'ANN'").fetchone() == (1,)


# ----- action parsing -------------------------------------------------------------------------
def test_parse_action_forms() -> None:
    env = SqlEnv(load_builtin())
    assert env.parse_action("execute[SELECT [x] FROM t]").arguments == {"sql": "SELECT [x] FROM t"}
    assert env.parse_action("submit[[1, 2]]").arguments == {"answer": "[1, 2]"}
    assert env.parse_action("commit").name == "commit"
    block = env.parse_action("Let me check.\n```sql\nSELECT COUNT(*) FROM t\n```")
    assert block.name == "execute_sql" and block.arguments["sql"] == "SELECT COUNT(*) FROM t"
    assert env.parse_action("Action: Answer\nFinal Answer: [\"x\"]").arguments == {"answer": '["x"]'}
    assert env.parse_action(ToolCall(name="execute_sql", arguments={"sql": "SELECT 1"})).text == "execute[SELECT 1]"
    assert env.parse_action({"name": "commit", "arguments": {}}).text == "commit"
    with pytest.raises(UnknownActionForm):
        env.parse_action("drop everything please")
