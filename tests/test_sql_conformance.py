"""The SQL env's default (official) grading against the published evaluators.

The shared conformance vectors (../shared/conformance: Spider execution match by test-suite-sql-eval,
DB-bench verdicts by AgentBench) must agree 100 %; the unit tests pin the rules that decide them:
column permutations, the `order by` rule, DISTINCT removal, exact value comparison, AgentBench's
answer cleaning and table MD5, the MySQL emulation, withheld tasks and the lenient mode.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections import Counter
from pathlib import Path

import pytest

from conformance import dbbench as dbbench_check
from conformance import spider as spider_check
from envs.sql import gradable, mysql_compat
from envs.sql.dbbench_eval import clean_answer, committed_hash, compare_results, table_hash
from envs.sql.env import SqlEnv
from envs.sql.pyliteral import LiteralError, evaluate
from envs.sql.spider_eval import order_matters, prepare, result_eq

SHARED = Path(__file__).resolve().parents[2] / "shared"
VECTORS = SHARED / "conformance"
DATA = SHARED / "data"


def _lines(name: str) -> list[dict]:
    path = VECTORS / name
    if not path.is_file():
        pytest.skip(f"conformance vectors not found: {path} (../shared/conformance from the repo root)")
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


# ----- the shared vectors ----------------------------------------------------------------------------
def test_spider_vectors_agree_fully() -> None:
    lines = _lines("spider_exec.jsonl")
    if not (DATA / "sql" / "spider" / "questions.json").is_file():
        pytest.skip(f"Spider data not found under {DATA / 'sql' / 'spider'}")
    result = spider_check.check(lines, DATA)
    print(f"\nspider_exec.jsonl: {result.agree}/{result.cases} agree; "
          f"expected verdicts {dict(Counter(bool(x['expected']['match']) for x in lines))}")
    assert result.cases == len(lines) == 7737
    assert result.agree == result.cases, result.examples


def test_dbbench_vectors_agree_fully() -> None:
    lines = _lines("dbbench.jsonl")
    if not (DATA / "sql" / "dbbench" / "standard.jsonl").is_file():
        pytest.skip(f"DB-bench data not found under {DATA / 'sql' / 'dbbench'}")
    result = dbbench_check.check(lines, DATA)
    kinds = Counter("modification" if "statements" in x else "question" for x in lines)
    print(f"\ndbbench.jsonl: {result.agree}/{result.cases} agree ({dict(kinds)})")
    assert result.cases == len(lines) == 5213
    assert result.agree == result.cases, result.examples


def test_checker_reports_disagreement(tmp_path: Path) -> None:
    """A wrong expected verdict is counted as a disagreement, with both verdicts in the example."""
    root = _tiny_data(tmp_path)
    line = {"db_id": "tiny", "question_index": 0, "kind": "gold", "gold": "SELECT name FROM pets ORDER BY age",
            "pred": "SELECT name FROM pets ORDER BY age", "expected": {"match": False}}
    result = spider_check.check([line, {**line, "expected": {"match": True}}], root)
    assert (result.cases, result.agree) == (2, 1)
    assert result.examples[0]["expected"] is False and result.examples[0]["ours"] is True


# ----- Spider rules --------------------------------------------------------------------------------
def test_column_permutation_accepted_extra_column_rejected() -> None:
    gold = [("Rex", 3), ("Tom", 5)]
    assert result_eq(gold, [(5, "Tom"), (3, "Rex")], ordered=False)
    assert result_eq(gold, [(3, "Rex"), (5, "Tom")], ordered=True)
    assert not result_eq(gold, [(5, "Tom"), (3, "Rex")], ordered=True)
    assert not result_eq(gold, [("Rex", 3, 3), ("Tom", 5, 5)], ordered=False)
    assert not result_eq(gold, [("Rex", 3), ("Rex", 3)], ordered=False)  # bags, not sets
    assert not result_eq(gold, [("Rex", 5), ("Tom", 3)], ordered=False)  # columns move whole, not cells
    assert result_eq([], [], ordered=True)
    wide = [tuple(range(i, i + 6)) for i in range(5)]
    assert result_eq(wide, [tuple(reversed(r)) for r in wide], ordered=False)


def test_values_compare_exactly() -> None:
    assert not result_eq([(3,)], [("3",)], ordered=False)  # numbers as text
    assert result_eq([(3,)], [(3.0,)], ordered=False)  # 3 == 3.0 in Python
    assert not result_eq([(1, 1.5)], [(1.0, 1.5)], ordered=False)  # the reference's quick check sorts by str()
    assert not result_eq([(2.345678,)], [(2.35,)], ordered=False)  # rounded floats
    assert not result_eq([("abc",)], [("ABC",)], ordered=False)
    assert not result_eq([("abc",)], [("abc ",)], ordered=False)
    assert not result_eq([(None,)], [("None",)], ordered=False)


def test_order_by_rule_is_a_substring_test() -> None:
    assert order_matters(prepare("SELECT a FROM t ORDER BY a"))
    assert order_matters(prepare("SELECT a FROM (SELECT a FROM t order by a LIMIT 3)"))  # anywhere, as in the reference
    assert not order_matters(prepare("SELECT a FROM t ORDER  BY a"))  # two spaces: not found
    assert not order_matters(prepare("SELECT max(a) FROM t"))


def test_distinct_removed_from_first_statement() -> None:
    assert prepare("SELECT DISTINCT name FROM t") == "SELECT  name FROM t"
    assert prepare("SELECT count(Distinct x) FROM t") == "SELECT count( x) FROM t"
    assert prepare("SELECT 'distinct', distinct_id, \"distinct\" FROM t") == "SELECT 'distinct', distinct_id, \"distinct\" FROM t"
    assert prepare("SELECT a FROM t; DROP TABLE t") == "SELECT a FROM t; "
    assert prepare("SELECT a FROM t WHERE b > = 2") == "SELECT a FROM t WHERE b >= 2"


def _tiny_data(tmp_path: Path) -> Path:
    """A data root like ../shared/data: one Spider database and three DB-bench tasks."""
    root = tmp_path / "data"
    (root / "sql" / "spider" / "database").mkdir(parents=True)
    conn = sqlite3.connect(root / "sql" / "spider" / "database" / "tiny.sqlite")
    conn.executescript("CREATE TABLE pets (name TEXT, age INTEGER, kind TEXT); CREATE TABLE gone (x INTEGER);"
                       "INSERT INTO pets VALUES ('Rex', 3, 'dog'), ('Tom', 5, 'cat'), ('Kit', 1, 'cat');")
    conn.close()
    questions = [
        {"db": "tiny", "query": "Names by age?", "gold": "SELECT name FROM pets ORDER BY age"},
        {"db": "tiny", "query": "Kinds?", "gold": "SELECT DISTINCT kind FROM pets"},
        {"db": "tiny", "query": "All x?", "gold": "SELECT x FROM gone"},
    ]
    (root / "sql" / "spider" / "questions.json").write_text(json.dumps(questions))
    table = {"table_name": "1st Table", "table_info": {"columns": [{"name": "Name", "type": "TEXT"}, {"name": "Score", "type": "INT"}],
                                                     "rows": [["Émile", 3], ["bo", None]]}}
    tasks = [
        {"description": "Score of Emile?", "label": ["3"], "type": ["other"], "table": table},
        {"description": "Who?", "label": ["none"], "type": ["comparison"], "table": table},
        {"description": "Set Bo's score to 4.", "label": ["UPDATE `1st Table` SET Score = '4' WHERE Name = 'BO'"],
         "type": ["UPDATE"], "table": table},
        {"description": "Set nothing.", "label": ["UPDATE `1st Table` SET Score = '3' WHERE Name = 'emile'"],
         "type": ["UPDATE"], "table": table},
    ]
    (root / "sql" / "dbbench").mkdir(parents=True)
    (root / "sql" / "dbbench" / "standard.jsonl").write_text("".join(json.dumps(t) + "\n" for t in tasks))
    return root


def test_spider_commit_in_env(tmp_path: Path) -> None:
    env = SqlEnv(SqlEnv.load_data(_tiny_data(tmp_path) / "sql" / "spider"))

    def commit(task: str, sql: str) -> float:
        env.reset(task_id=task)
        env.step(f"execute[{sql}]")
        return env.step("commit").reward

    assert commit("spider-tiny-0000", "SELECT name FROM pets ORDER BY age") == 1.0
    assert commit("spider-tiny-0000", "SELECT name FROM pets ORDER BY age DESC") == 0.0  # gold orders
    assert commit("spider-tiny-0000", "SELECT DISTINCT name FROM pets ORDER BY age") == 1.0
    assert commit("spider-tiny-0001", "SELECT kind FROM pets") == 1.0  # DISTINCT removed on both sides
    assert commit("spider-tiny-0001", "SELECT kind, kind FROM pets") == 0.0
    env.reset(task_id="spider-tiny-0001")
    env.step("execute[DELETE FROM pets]")
    env.step("execute[SELECT kind FROM pets]")  # an empty result here; graded on a fresh copy
    assert env.step("commit").reward == 1.0
    env.reset(task_id="spider-tiny-0001")
    assert env.step('submit[["dog", "cat"]]').reward == 1.0  # answers: the gold as written
    env.reset(task_id="spider-tiny-0001")
    assert env.step('submit[["dog", "cat", "cat"]]').reward == 1.0  # or as the reference runs it
    env.reset(task_id="spider-tiny-0000")
    assert env.step('submit[Kit, Rex, Tom]').reward == 1.0
    env.reset(task_id="spider-tiny-0000")
    assert env.step('submit[kit, rex, tom]').reward == 0.0


# ----- DB-bench rules --------------------------------------------------------------------------------
def test_agentbench_answer_cleaning() -> None:
    assert clean_answer("[('Paris',), ('Rome',)]") == ["Paris", "Rome"]
    assert clean_answer("[('a', 1)]") == []  # several-value tuples are skipped
    assert clean_answer("['x', None]") == ["x", "0"]
    assert clean_answer("[x, 'a,b']") == ["x", "ab"]  # not Python: split at commas outside quotes, then commas dropped
    assert clean_answer("1,234") == ["1234"] and clean_answer("12%") == ["12"] and clean_answer("NULL") == ["0"]
    assert clean_answer("[1][0]") is None  # evaluates to a non-list: the reference returns nothing
    assert compare_results("2.009", ["2"], "counting") and not compare_results("2.011", ["2"], "counting")
    assert compare_results("[1.0, 2]", ["2", "1"], "other") and not compare_results("[1, 1]", ["1", "2"], "other")
    assert compare_results('["b", "a", "a"]', ["a", "b"], "other")  # sets of strings
    assert not compare_results("paris", ["Paris"], "other")
    assert not compare_results("[1][0]", ["1"], "other")


def test_python_literal_evaluation_is_bounded() -> None:
    assert evaluate("[('a',), (1.5,), (None,)]") == [("a",), (1.5,), (None,)]
    assert evaluate(" [1990-1995, -2, 'x' * 2]") == [-5, -2, "xx"]
    for hostile in ("[__import__('os').system('true')]", "[x]", "[open('f')]", "[9 ** 9 ** 9]", "['x' * 10 ** 9]",
                    "[(lambda: 1)()]", "[i for i in range(10)]", "[" * 200 + "]" * 200):
        with pytest.raises(LiteralError):
            evaluate(hostile)


def test_table_md5_emulation() -> None:
    def md5(text: str) -> str:
        return hashlib.md5(text.encode()).hexdigest()

    rows = [("Rex", "3"), ("Tom", None)]
    expected = md5(",".join(sorted([md5("Rex,3")[:5], md5("Tom")[:5]])))
    assert table_hash(rows) == expected == table_hash(list(reversed(rows)))
    assert table_hash([]) is None and committed_hash([]) == "None"
    assert compare_results(expected, f"[('{expected}',)]", "UPDATE")
    assert compare_results(committed_hash([]), "[(None,)]", "DELETE")  # both sides clean to "0"
    assert not compare_results(committed_hash(None), f"[('{expected}',)]", "UPDATE")


def test_mysql_statements_rewritten_for_sqlite() -> None:
    names = mysql_compat.digit_names(["1st Table", "2nd_col", "Name", "2019"])
    assert names == {"2nd_col"}
    assert mysql_compat.to_sqlite(r"""SELECT "it\'s", 'a''b', 'x\\y', "q""q", `1 t` # note""", names) == \
        "SELECT 'it''s', 'a''b', 'x\\y', 'q\"q', `1 t`  "
    assert mysql_compat.to_sqlite("UPDATE t SET 2nd_col = 'a\\0b'", names) == "UPDATE t SET `2nd_col` = ('a' || char(0) || 'b')"
    assert mysql_compat.to_sqlite("SELECT '\\%', '\\q'") == "SELECT '\\%', 'q'"
    assert mysql_compat.mysql_ai_ci("Émile", "EMILE") == 0 and mysql_compat.mysql_ai_ci("a ", "a") != 0


def test_dbbench_env_grading_and_withheld_tasks(tmp_path: Path) -> None:
    root = _tiny_data(tmp_path) / "sql"
    served = SqlEnv.load_data(root)
    assert served.withheld == {gradable.EMPTY_GOLD: 1, gradable.EMPTY_LABEL: 1, gradable.NO_CHANGE: 1}
    assert sorted(set(SqlEnv.load_data(root, {"tasks": "all"}).tasks) - set(served.tasks)) == \
        ["dbbench-standard-001", "dbbench-standard-003", "spider-tiny-0002"]
    info = SqlEnv.info(served)
    assert info.withheld_tasks == served.withheld and info.modes == {"grading": "official", "tasks": "gradable"}
    env = SqlEnv(served)
    obs = env.reset(task_id="dbbench-standard-002").observation
    assert "`1st Table`" in obs and "MySQL conventions" in obs
    env.step("execute[UPDATE `1st Table` SET Score = \"4\" WHERE Name = 'bo']")  # MySQL: "4" is a string, case ignored
    assert env.step("commit").reward == 1.0
    env.reset(task_id="dbbench-standard-002")
    env.step("execute[UPDATE `1st Table` SET Score = '4 ' WHERE Name = 'bo']")  # a trailing space counts (NO PAD)
    assert env.step("commit").reward == 0.0
    env.reset(task_id="dbbench-standard-000")
    env.step("execute[SELECT Score FROM `1st Table` WHERE Name = 'emile']")
    assert env.step("commit").reward == 1.0  # committed as "[('3',)]"


def test_lenient_mode_still_lenient(tmp_path: Path) -> None:
    official = SqlEnv(SqlEnv.load_data(None))
    lenient = SqlEnv(SqlEnv.load_data(None, {"grading": "lenient"}))
    tid = "builtin-shop-single-00"  # average price per category: floats
    official.reset(task_id=tid)
    rows = official.gold_rows()
    near = json.dumps([[name.upper(), round(avg, 2) + 1e-6] for name, avg in rows])
    for env, want in ((official, 0.0), (lenient, 1.0)):
        env.reset(task_id=tid)
        assert env.step(f"submit[{near}]").reward == want
    tid = "builtin-company-count_dept-00"
    for env, want in ((official, 0.0), (lenient, 1.0)):
        env.reset(task_id=tid)
        assert env.step('submit["25.0"]').reward == want  # a number as text
    root = _tiny_data(tmp_path) / "sql"
    bench = SqlEnv(SqlEnv.load_data(root, {"grading": "lenient", "tasks": "all"}))
    bench.reset(task_id="dbbench-standard-000")
    assert bench.step("submit[ 3.0000 ]").reward == 1.0
    bench.reset(task_id="dbbench-standard-002")
    bench.step("execute[UPDATE `1st Table` SET Score = '4.0' WHERE Name = 'bo']")
    assert bench.step("commit").reward == 1.0  # tables compared after normalisation
