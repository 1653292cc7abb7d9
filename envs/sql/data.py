"""Shared data of the SQL env: database templates, tasks and their (hidden) gold.

Three sources, one shape:

* built-in (`load(None)`): the generated `company` and `shop` databases (`generator`);
* Spider format: ``spider/questions.json`` (``db``, ``query``, ``gold``, ``hardness``)
  and ``spider/database/<db>.sqlite``;
* AgentBench DB-bench format: ``dbbench/*.jsonl`` (one task per line with its table
  inline); one SQLite database is built per task, the way AgentBench builds it on MySQL
  (every column TEXT, cells ``str(value)``; `envs.sql.mysql_compat`), and the task's SQL is
  read as MySQL (`SqlData.dialect`).

Gold answers live in `SqlData.gold`, not in `TaskSpec.meta`, because task specs are
listed to agents over HTTP. Splits of the real data are derived from a hash of the
stable task id (60 % train, 20 % dev, 20 % test).

Modes (`SqlData.apply_modes`): with ``tasks=gradable`` (the default) the tasks that cannot be
graded honestly are withheld (`envs.sql.gradable`); ``tasks=all`` serves every task.
"""

from __future__ import annotations

import hashlib
import json
import re
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from collections.abc import Mapping
from typing import Any, Literal, Protocol

from pydantic import BaseModel, Field

from envs.base import DataDir, DataDirError, EnvData, as_data_dir
from envs.sql import generator, mysql_compat, render
from envs.sql.sandbox import ExecResult, SandboxDb, SessionDb, SqlLimits, open_trusted, serialize_file
from envs.sql.statements import has_top_level_order_by
from envs.types import Split, TaskSpec

_DB_NAME = re.compile(r"^[A-Za-z0-9_\-]{1,100}$")


GRADING_MAX_ROWS = 100_000  # rows a grading run of a query may fetch (sessions keep their own limit)
GOLD_TIME_LIMIT_S = 30.0  # a gold query (trusted) may run this long; the agent's keep the session's limit


class SqlGold(BaseModel):
    """What a task is graded against. `sql` is the gold query or statement(s) (DB-bench: as MySQL);
    `label` the DB-bench answer. DB-bench tasks also carry their type, their one table's name and
    columns, and (data changes) the table hash AgentBench compares (`answer_md5`)."""

    kind: Literal["query", "mutation"]
    db: str
    sql: str | None = None
    label: list[Any] | None = None
    ordered: bool = False
    source: str = "builtin"
    task_type: str = ""
    table: str | None = None
    columns: list[str] = Field(default_factory=list)
    answer_md5: str | None = None


@dataclass(frozen=True)
class DbTemplate:
    """A database every session copies: serialized bytes and its schema text (read-only)."""

    data: bytes
    schema: str


class DbBackend(Protocol):
    """Opens a session's private copy of a database (SQLite by default; see `envs.sql.postgres`)."""

    name: str

    def open(self, key: str, template: DbTemplate, limits: SqlLimits) -> SessionDb: ...

    def describe(self, key: str, template: DbTemplate) -> str:
        """The schema text shown to the agent, as this backend names and types things."""
        ...


class SqliteBackend:
    """Each session deserializes the shared template into its own in-memory SQLite database.

    Its connection reads text as the Spider evaluator does (invalid UTF-8 bytes dropped) and knows
    the DB-bench collation (`mysql_compat.COLLATION`)."""

    name = "sqlite"

    def open(self, key: str, template: DbTemplate, limits: SqlLimits) -> SessionDb:
        return SandboxDb(template.data, limits)  # its connection (in the worker) decodes text and collates as above

    def describe(self, key: str, template: DbTemplate) -> str:
        return template.schema


class SqlData(EnvData):
    def __init__(self, tasks: list[TaskSpec], databases: dict[str, DbTemplate], gold: dict[str, SqlGold],
                 limits: SqlLimits | None = None, backend: DbBackend | None = None) -> None:
        super().__init__(tasks)
        self.databases = databases
        self.gold = gold
        self.limits = limits or SqlLimits()
        self.backend: DbBackend = backend or SqliteBackend()
        # results of gold queries, computed once per (task, variant) for grading
        self.gold_results: dict[tuple[str, str], ExecResult] = {}

    def schema_text(self, key: str) -> str:
        return self.backend.describe(key, self.databases[key])

    def open_db(self, key: str, limits: SqlLimits | None = None) -> SessionDb:
        """A new private copy of database `key` for one session (or for grading)."""
        return self.backend.open(key, self.databases[key], limits or self.limits)

    @property
    def grading_limits(self) -> SqlLimits:
        """Limits of a grading run of the agent's SQL: the session's, with more rows."""
        return self.limits.model_copy(update={"max_rows": max(self.limits.max_rows, GRADING_MAX_ROWS)})

    @property
    def gold_limits(self) -> SqlLimits:
        """Limits of a run of gold SQL: grading limits with a longer time limit."""
        return self.grading_limits.model_copy(update={"time_limit_s": max(self.limits.time_limit_s, GOLD_TIME_LIMIT_S)})

    def dialect(self, gold: SqlGold, sql: str) -> str:
        """SQL as this task's database runs it: DB-bench SQL is MySQL, rewritten for SQLite."""
        if gold.source != "dbbench" or self.backend.name != "sqlite":
            return sql
        return mysql_compat.to_sqlite(sql, mysql_compat.digit_names([gold.table or "", *gold.columns]))

    def open_gold_db(self, key: str) -> SessionDb:
        """A fresh copy of database `key` for trusted SQL (a dataset's gold), with the gold limits: in this
        process on SQLite (no worker to start), else the backend's."""
        if isinstance(self.backend, SqliteBackend):
            return open_trusted(self.databases[key].data, self.gold_limits)
        return self.backend.open(key, self.databases[key], self.gold_limits)

    def run_fresh(self, gold: SqlGold, sql: str, trusted: bool = False) -> ExecResult:
        """Run `sql` (in the task's dialect) on a fresh copy of the task's database, with grading
        limits (`trusted`: gold SQL, with the gold limits, in this process on SQLite)."""
        db = self.open_gold_db(gold.db) if trusted else self.open_db(gold.db, self.grading_limits)
        try:
            return db.execute(self.dialect(gold, sql))
        finally:
            db.close()

    def apply_modes(self, modes: Mapping[str, str]) -> None:
        if modes.get("tasks", "gradable") != "gradable":
            return
        from envs.sql.gradable import ungradable  # imports this module

        for reason, ids in ungradable(self, official=modes.get("grading", "official") == "official").items():
            self.withhold(ids, reason)


def hash_split(task_id: str) -> Split:
    bucket = int(hashlib.sha256(task_id.encode()).hexdigest(), 16) % 10
    return Split.train if bucket < 6 else Split.dev if bucket < 8 else Split.test


def template_from_bytes(data: bytes, sample_rows: int = 3, quote: str = '"') -> DbTemplate:
    conn = sqlite3.connect(":memory:")
    try:
        conn.deserialize(data)
        mysql_compat.register(conn)
        return DbTemplate(data=data, schema=render.schema(conn, sample_rows, quote))
    finally:
        conn.close()


# ----- built-in -------------------------------------------------------------------------
def load_builtin() -> SqlData:
    databases, generated = generator.generate()
    templates = {f"builtin/{db}": template_from_bytes(raw) for db, raw in databases.items()}
    tasks: list[TaskSpec] = []
    gold: dict[str, SqlGold] = {}
    for t in generated:
        db = f"builtin/{t.db}"
        tasks.append(TaskSpec(task_id=t.task_id, split=Split(t.split), instruction=t.question,
                              meta={"db": db, "kind": t.kind, "source": "builtin"}))
        gold[t.task_id] = SqlGold(kind=t.kind, db=db, sql=t.gold, source="builtin",  # type: ignore[arg-type]
                                  ordered=t.kind == "query" and has_top_level_order_by(t.gold))
    return SqlData(tasks, templates, gold)


# ----- Spider -----------------------------------------------------------------------------
class SpiderQuestion(BaseModel):
    db: str = Field(pattern=_DB_NAME.pattern)
    query: str
    gold: str
    hardness: str = ""
    db_tables: dict[str, list[str]] = Field(default_factory=dict)


def load_spider(data_dir: str | Path | DataDir) -> tuple[list[TaskSpec], dict[str, DbTemplate], dict[str, SqlGold]]:
    root = as_data_dir(data_dir)
    questions_path = root.file("questions.json")
    raw = json.loads(questions_path.read_text(encoding="utf-8"))
    questions = [SpiderQuestion.model_validate(q) for q in raw]
    templates: dict[str, DbTemplate] = {}
    tasks: list[TaskSpec] = []
    gold: dict[str, SqlGold] = {}
    for i, q in enumerate(questions):
        key = f"spider/{q.db}"
        if key not in templates:
            db_file = root.path(Path("database") / f"{q.db}.sqlite")
            if not db_file.is_file():  # Spider's own layout: database/<db>/<db>.sqlite
                db_file = root.file(Path("database") / q.db / f"{q.db}.sqlite")
            templates[key] = template_from_bytes(serialize_file(db_file))
        task_id = f"spider-{q.db}-{i:04d}"
        tasks.append(TaskSpec(task_id=task_id, split=hash_split(task_id), instruction=q.query,
                              meta={"db": key, "kind": "query", "source": "spider", "hardness": q.hardness}))
        gold[task_id] = SqlGold(kind="query", db=key, sql=q.gold, ordered=has_top_level_order_by(q.gold), source="spider")
    return tasks, templates, gold


# ----- DB-bench -----------------------------------------------------------------------------
class DbBenchColumn(BaseModel):
    name: str
    type: str = "TEXT"


class DbBenchTableInfo(BaseModel):
    columns: list[DbBenchColumn]
    rows: list[list[Any]]


class DbBenchTable(BaseModel):
    table_name: str
    table_info: DbBenchTableInfo


class DbBenchTask(BaseModel):
    description: str
    label: list[Any] = Field(default_factory=list)
    table: DbBenchTable
    type: list[str]
    add_description: str = ""
    source: str = ""
    answer_md5: str | None = None


def dbbench_database(table: DbBenchTable) -> bytes:
    """An SQLite database holding the task's one inline table, built as AgentBench builds it."""
    return mysql_compat.build_database(table.table_name, [c.name for c in table.table_info.columns], table.table_info.rows)


def mysql_names_quoted(statement: str, table: DbBenchTable) -> str:
    """A MySQL statement with the table's digit-leading names back-quoted (literals untouched),
    so that it reads the same on SQLite and, via `envs.sql.postgres`, on PostgreSQL."""
    names = mysql_compat.digit_names([table.table_name, *(c.name for c in table.table_info.columns)])
    return mysql_compat.to_sqlite(statement, names, literals=False) if names else statement


def load_dbbench(path: Path) -> tuple[list[TaskSpec], dict[str, DbTemplate], dict[str, SqlGold]]:
    stem = re.sub(r"[^A-Za-z0-9_]", "_", path.stem)
    tasks: list[TaskSpec] = []
    templates: dict[str, DbTemplate] = {}
    gold: dict[str, SqlGold] = {}
    with path.open(encoding="utf-8") as fh:
        for i, line in enumerate(raw for raw in fh if raw.strip()):
            item = DbBenchTask.model_validate_json(line)
            task_type = item.type[0] if item.type else "other"
            # as AgentBench's task.py decides it (case-sensitive): these types are graded by the table hash
            kind = "mutation" if task_type in ("INSERT", "UPDATE", "DELETE") else "query"
            task_id = f"dbbench-{stem}-{i:03d}"
            key = f"dbbench/{stem}/{i:03d}"
            templates[key] = template_from_bytes(dbbench_database(item.table), quote="`")
            instruction = f"{item.description}\n{item.add_description}".strip()
            tasks.append(TaskSpec(task_id=task_id, split=hash_split(task_id), instruction=instruction,
                                  meta={"db": key, "kind": kind, "source": "dbbench", "type": task_type,
                                        "table": item.table.table_name}))
            common: dict[str, Any] = {"db": key, "source": "dbbench", "task_type": task_type, "table": item.table.table_name,
                                      "columns": [c.name for c in item.table.table_info.columns]}
            if kind == "mutation":
                statement = "; ".join(mysql_names_quoted(str(s), item.table) for s in item.label)
                gold[task_id] = SqlGold(kind="mutation", sql=statement, answer_md5=item.answer_md5 or None, **common)
            else:
                gold[task_id] = SqlGold(kind="query", label=item.label, **common)
    return tasks, templates, gold


# ----- entry point -----------------------------------------------------------------------
def load_dir(data_dir: str | Path | DataDir) -> SqlData:
    """Read a folder laid out like ``shared/data/sql/`` (``spider/`` and/or ``dbbench/``),
    or a Spider folder itself, or a DB-bench folder itself."""
    folder = as_data_dir(data_dir)
    tasks: list[TaskSpec] = []
    templates: dict[str, DbTemplate] = {}
    gold: dict[str, SqlGold] = {}
    spider_dirs = [rel for rel in ("spider", ".") if folder.path(rel).is_dir() and folder.exists(f"{rel}/questions.json")]
    if spider_dirs:
        t, d, g = load_spider(folder.sub(spider_dirs[0]))
        tasks += t
        templates.update(d)
        gold.update(g)
    bench_glob = "dbbench/*.jsonl" if folder.path("dbbench").is_dir() else "*.jsonl"
    for jsonl in folder.glob(bench_glob):
        t, d, g = load_dbbench(jsonl)
        tasks += t
        templates.update(d)
        gold.update(g)
    if not tasks:
        raise DataDirError(f"no Spider (questions.json) or DB-bench (*.jsonl) data under {folder}")
    return SqlData(tasks, templates, gold)
