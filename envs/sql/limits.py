"""Limits of a session's SQL work and the shapes both database backends return.

`SqlLimits` are per session: a wall-clock limit per action, enforced from outside
the query (an interrupt at the limit, then the session's worker process is
killed `kill_grace_s` later if the engine did not stop); a memory ceiling for the
worker; row, value-size and result budgets in which every fetched value counts
(`value_cost`: numbers and NULLs too, not only text); and a separate budget for
reading the tables when a data change is graded.

`ExecResult.fatal` says the session's database is gone (its worker was killed or
died): the episode cannot go on. `SqlLimitError` is raised by `snapshot()` when a
limit stops the reading of the tables for grading: the agent's failure.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from pydantic import BaseModel, Field

Snapshot = dict[str, tuple[list[str], list[tuple[Any, ...]]]]

ROW_COST = 64  # a row's tuple in Python
_NUMBER_COST = 32  # a slot and an int/float object
_NULL_COST = 8  # a slot (None is shared)
_SIZED_COST = 56  # a slot and a str/bytes object's header; its length is added


class SqlLimits(BaseModel):
    """Per-action and per-session limits."""

    time_limit_s: float = Field(default=3.0, gt=0, description="wall-clock seconds per execute action (and per grading read)")
    kill_grace_s: float = Field(default=2.0, gt=0, description="seconds after the time limit at which a statement that did not "
                                                                 "stop is killed with the session's worker (the episode ends)")
    low_priority_after_s: float = Field(default=0.01, ge=0, description="CPU seconds after which a statement runs at a low "
                                        "priority (nice 10) for the rest of its session")
    idle_priority_after_s: float = Field(default=0.25, ge=0, description="CPU seconds after which a statement runs only when "
                                         "no other work wants the CPU, taking turns with other such statements")
    max_rows: int = Field(default=10_000, ge=1, description="rows fetched from one query; more are cut off")
    max_growth_bytes: int = Field(default=16 * 2**20, ge=0, description="bytes the database (and its temp store) may grow by")
    max_value_bytes: int = Field(default=1_000_000, ge=1_000, description="largest string or blob value")
    max_like_pattern_bytes: int = Field(default=10_000, ge=100, description="longest LIKE/GLOB pattern")
    max_result_bytes: int = Field(default=16_000_000, ge=10_000, description="cost of the values fetched from one query (value_cost)")
    max_snapshot_bytes: int = Field(default=64 * 2**20, ge=10_000, description="cost of the rows read to grade a data change")
    max_memory_bytes: int = Field(default=256 * 2**20, ge=16 * 2**20, description="memory of a session's worker beyond its template")
    max_sql_chars: int = Field(default=20_000, ge=100)

    @property
    def kill_after_s(self) -> float:
        return self.time_limit_s + self.kill_grace_s


@dataclass
class ExecResult:
    """Outcome of one execute action (possibly several statements; the last one's result)."""

    columns: list[str] | None = None  # None: the last statement returned no result set
    rows: list[tuple[Any, ...]] = field(default_factory=list)
    rowcount: int = -1
    truncated: bool = False
    error: str | None = None
    statements: int = 0
    fatal: bool = False  # the session's database is gone; the episode must end


class SqlLimitError(RuntimeError):
    """A limit stopped the reading of the tables for grading (the agent's failure; the message says which)."""


class SessionDb(Protocol):
    """What the env needs from a session's database, whatever the backend."""

    def execute(self, sql: str) -> ExecResult: ...

    def snapshot(self) -> Snapshot:
        """Every user table's columns and rows; raises `SqlLimitError` when a limit stops it."""
        ...

    def finish_transaction(self) -> None: ...

    def close(self) -> None: ...


def value_cost(value: Any) -> int:
    """What one fetched value counts against a result budget (about its memory in Python)."""
    if isinstance(value, (str, bytes, bytearray, memoryview)):
        return _SIZED_COST + len(value)
    return _NULL_COST if value is None else _NUMBER_COST


def rows_cost(rows: list[tuple[Any, ...]]) -> int:
    return sum(ROW_COST + sum(value_cost(v) for v in r) for r in rows)


def fetch_limited(cur: Any, max_rows: int, budget: int, chunk: int = 256) -> tuple[list[tuple[Any, ...]], int, bool]:
    """Up to `max_rows + 1` rows: (rows, their cost, over budget). Stops as soon as the rows cost more
    than `budget` (every value counts, see `value_cost`). Chunks grow from 8 rows up to `chunk` while
    the budget left holds them at the rows' cost so far, so big rows are fetched a few at a time."""
    rows: list[tuple[Any, ...]] = []
    cost = 0
    size = 8
    while len(rows) <= max_rows:
        part = cur.fetchmany(min(size, max_rows + 1 - len(rows)))
        if not part:
            break
        rows.extend(part)
        cost += rows_cost(part)
        if cost > budget:
            return rows, cost, True
        per_row = cost / len(rows)
        size = int(max(1, min(chunk, 2 * size, (budget - cost) / per_row / 2)))
    return rows, cost, False


def too_large_message(limits: SqlLimits) -> str:
    return (f"result too large: the query returns more than {limits.max_result_bytes:,} bytes (every value counts: "
            "32 per number, 56 + length per string); select fewer rows or columns")


def time_limit_message(limits: SqlLimits) -> str:
    return (f"query stopped: it ran longer than the time limit of {limits.time_limit_s:g} s "
            "(the stopped statement's changes were rolled back)")


def killed_message(limits: SqlLimits, what: str = "the statement") -> str:
    return (f"query stopped: {what} did not stop at the time limit of {limits.time_limit_s:g} s, so this session's "
            "database was discarded; the episode ends")
