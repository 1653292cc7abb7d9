"""SQL database environment: answer questions or change data with SQL on a sandboxed copy.

In the spirit of AgentBench's DB-bench and InterCode-SQL / Spider. Every session
works on its own in-memory SQLite copy of a task's database (`sandbox`, `engine`),
in its own worker process that the service kills when a statement overruns its
limits (`worker`, `limits`); tasks
come from a built-in generated set (`generator`), the Spider format or the
DB-bench JSONL format (`data`); grading (`grading`) is by default the published
evaluators' — test-suite-sql-eval's execution match (`spider_eval`), AgentBench's
answer comparison and table MD5 (`dbbench_eval`, on a MySQL emulation: `mysql_compat`)
— or trajgym's tolerant comparison in mode ``grading=lenient`` (`reward`); tasks that
cannot be graded honestly are withheld unless ``tasks=all`` (`gradable`). An optional PostgreSQL backend
(`postgres`, one role and schema per session) serves the same tasks.
"""
