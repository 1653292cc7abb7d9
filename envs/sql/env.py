"""`SqlEnv`: one episode on a private copy of a task's database.

Actions: ``execute[SQL]`` (or a fenced ```sql block) runs SQL and shows a truncated
table or the database's error; ``submit[answer]`` and ``commit`` end the episode.
Questions are graded on the submitted answer (`submit`) or on the last query that
returned rows (`commit`); data-changing tasks on the state of the tables after the
agent's statements (either action; `submit`'s text is ignored). The rules are the
published evaluators' by default (mode ``grading=official``: test-suite-sql-eval for
Spider, AgentBench's for DB-bench) or trajgym's tolerant ones (``grading=lenient``);
see `envs.sql.grading`. Tasks that cannot be graded honestly are withheld unless
``tasks=all`` (`envs.sql.gradable`). DB-bench SQL is read as MySQL (`envs.sql.mysql_compat`).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, ClassVar

from envs.actions import UnknownActionForm
from envs.base import Env, ModeSpec
from envs.sql import expert, grading
from envs.sql.data import SqlData, SqlGold, load_builtin, load_dir
from envs.sql.grading import GradeError
from envs.sql.render import execution
from envs.sql.sandbox import SessionDb, SqlLimitError
from envs.sql.statements import find_sql_block, strip_fences
from envs.types import Action, StepResult, TaskSpec, ToolCall, ToolParam, ToolSpec

_FINAL_ANSWER = re.compile(r"final answer\s*:\s*(.+)$", re.IGNORECASE | re.DOTALL)

HELP = ("Actions: execute[SQL] (or a ```sql fenced block) runs SQL on your own copy of the database and shows "
        "the result; submit[answer] ends the episode with your answer, e.g. submit[[[\"Paris\", 3], [\"Rome\", 2]]] "
        "(a JSON list of rows; a single value or a comma-separated list also works); commit ends the episode: for a "
        "question your last query's result is graded, for a data change the tables are compared with the expected state.")


def make_tools(dialect: str) -> list[ToolSpec]:
    """The env's three verbs; `dialect` names the database in the descriptions."""
    return [
        ToolSpec(name="execute_sql", description=f"Run SQL ({dialect} dialect) on the database and see the result or error.",
                 params=[ToolParam(name="sql", description="one or more SQL statements separated by ';'")],
                 text_template="execute[{sql}]"),
        ToolSpec(name="submit_answer", description="Submit the final answer to the question and end the episode.",
                 params=[ToolParam(name="answer", description="the answer: a JSON list of rows, a list of values or a single value")],
                 text_template="submit[{answer}]"),
        ToolSpec(name="commit", description="End the episode: grade your last query's result (questions) or your data changes.",
                 params=[], text_template="commit"),
    ]


MYSQL_NOTE = ("This task's database follows MySQL conventions: quote names with backticks (`name`); '...' and \"...\" are "
              "both string literals (with backslash escapes); text comparisons ignore case and accents.")

__all__ = ["GradeError", "SqlEnv", "make_tools"]


class SqlEnv(Env[SqlData]):
    name = "sql"
    version = "0.1.0"
    description = ("Answer questions or change data with SQL on a sandboxed SQLite copy of a database "
                   "(Spider / DB-bench style); graded by execution result or table comparison.")
    max_turns = 20
    system_prompt = ("You are an expert SQL agent working with a SQLite database. Explore it with SQL, then answer "
                     "the question or make the requested change. " + HELP)
    tools: ClassVar[list[ToolSpec]] = make_tools("SQLite")
    modes: ClassVar[tuple[ModeSpec, ...]] = (
        ModeSpec("grading", grading.GRADING_CHOICES,
                 "official: the published evaluators (test-suite-sql-eval execution match for Spider, AgentBench's "
                 "compare_results and table MD5 for DB-bench); lenient: normalised text, numeric tolerance, "
                 "flexible answer shapes, normalised table comparison"),
        ModeSpec("tasks", ("gradable", "all"),
                 "gradable: withhold tasks that cannot be graded honestly (empty gold result, label matched by an "
                 "empty answer, gold that changes nothing or cannot be reproduced); all: serve every task"),
    )
    long_steps = True  # a step may wait seconds on its worker process or server (envs.sql.worker)

    def __init__(self, data: SqlData) -> None:
        super().__init__(data)
        self.db: SessionDb | None = None
        self.gold: SqlGold | None = None
        self.executed: list[str] = []
        self.last_sql: str | None = None
        self.last_rows: list[tuple[Any, ...]] | None = None
        self.last_truncated = False

    # ----- protocol ---------------------------------------------------------------------
    @classmethod
    def load(cls, data_dir: Path | None = None) -> SqlData:
        return load_builtin() if data_dir is None else load_dir(data_dir)

    def start(self, task: TaskSpec) -> str:
        self.close()
        self.gold = self.data.gold[task.task_id]
        self.db = self.data.open_db(self.gold.db)
        self.executed, self.last_sql, self.last_rows, self.last_truncated = [], None, None, False
        if self.gold.kind == "mutation":
            goal = (f"Task (change the data): {task.instruction}\nMake the change with SQL statements, then reply "
                    "commit to have the tables checked.")
        else:
            goal = (f"Question: {task.instruction}\nFind the answer with SQL queries, then reply submit[answer], or "
                    "commit to have the result of your last query graded.")
        note = f"\n{MYSQL_NOTE}" if self.gold.source == "dbbench" and self.data.backend.name == "sqlite" else ""
        return f"{goal}\n\nDatabase schema:\n{self.data.schema_text(self.gold.db)}{note}\n\n{HELP}"

    def act(self, action: Action) -> StepResult:
        assert self.db is not None and self.gold is not None
        if action.name == "execute_sql":
            return self._execute(action.arguments["sql"])
        answer = action.arguments.get("answer") if action.name == "submit_answer" else None
        success, message = self._grade(answer)
        self.close()
        return StepResult(observation=message, reward=1.0 if success else 0.0, done=True,
                          info={"success": success, "kind": self.gold.kind})

    def parse_action(self, action: str | ToolCall | dict[str, Any]) -> Action:
        try:
            return super().parse_action(action)
        except UnknownActionForm:
            if not isinstance(action, str):
                raise
            block = find_sql_block(action)
            if block is not None:
                return Action(name="execute_sql", arguments={"sql": block}, text=f"execute[{block}]")
            final = _FINAL_ANSWER.search(action)
            if final is not None and final.group(1).strip():
                answer = final.group(1).strip()
                return Action(name="submit_answer", arguments={"answer": answer}, text=f"submit[{answer}]")
            raise

    def invalid_action_feedback(self, error: UnknownActionForm) -> str:
        return f"Invalid action: {str(error)[:300]}\n{HELP}"

    def expert_action(self) -> str:
        assert self.gold is not None
        return expert.next_action(self.gold, self.executed, self.last_sql, self.last_rows)

    def close(self) -> None:
        if self.db is not None:
            db, self.db = self.db, None
            db.close()

    # ----- steps ------------------------------------------------------------------------
    def _execute(self, raw_sql: str) -> StepResult:
        assert self.db is not None
        sql = strip_fences(raw_sql)
        if len(sql) > self.data.limits.max_sql_chars:
            return StepResult(observation=f"Error: SQL longer than {self.data.limits.max_sql_chars} characters.",
                              info={"error": True})
        if "\x00" in sql:  # sqlite3 raises ValueError on NUL; neither backend can run it
            return StepResult(observation="Error: SQL must not contain NUL characters.", info={"error": True})
        assert self.gold is not None
        result = self.db.execute(self.data.dialect(self.gold, sql))
        if result.fatal:  # the session's database is gone (its worker was killed): the episode ends
            self.close()
            return StepResult(observation=execution(result, self.data.limits), reward=0.0, done=True,
                              info={"error": True, "success": False, "kind": self.gold.kind})
        if result.error is None:
            self.executed.append(sql)
            if result.columns is not None:
                self.last_sql, self.last_rows, self.last_truncated = sql, result.rows, result.truncated
        return StepResult(observation=execution(result, self.data.limits), info={"error": result.error is not None})

    # ----- grading ----------------------------------------------------------------------
    def gold_rows(self) -> list[tuple[Any, ...]]:
        """The gold query's rows (as written) on a fresh copy of the database."""
        assert self.task is not None
        return grading.written_gold(self.data, self.task.task_id)

    def _grade(self, answer: str | None) -> tuple[bool, str]:
        assert self.gold is not None and self.db is not None and self.task is not None
        if self.gold.kind == "mutation":
            self.db.finish_transaction()
            try:
                actual = self.db.snapshot()
            except SqlLimitError as err:  # a limit stopped the reading of the agent's tables: the agent's failure
                return False, f"Wrong: {err}."
            verdict = grading.grade_mutation(self.data, self.task.task_id, actual)
        else:
            verdict = grading.grade_query(self.data, self.task.task_id, answer, self.last_sql, self.last_rows,
                                          self.last_truncated)
        return verdict.ok, verdict.message
