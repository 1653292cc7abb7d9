"""Data indices of the AgentGym routes: AgentGym's numbering, and trajgym's own tasks after it.

AgentGym's servers number their items in fixed ranges (SqlGym: BIRD train then dev; SearchQA:
the Search-R1 test then train sets; ALFWorld: its mapping files). An index in such a range
means that item and nothing else: when trajgym's data does not hold it the answer is a 404
that names what trajgym does serve, never another task. trajgym's own tasks are served right
after AgentGym's range: index = base + the task's position in ``GET /v1/tasks``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from envs.base import UnknownTask


@dataclass(frozen=True)
class NamedRange:
    """Items [start, stop) of an AgentGym server, e.g. ('BIRD dev', 9428, 10962)."""

    name: str
    start: int
    stop: int


def runs(indices: Iterable[int]) -> str:
    """'2420–2619, 2700' for a set of indices (consecutive runs collapsed)."""
    ordered = sorted(set(indices))
    if not ordered:
        return "none"
    parts: list[str] = []
    start = prev = ordered[0]
    for i in ordered[1:] + [None]:  # type: ignore[list-item]
        if i is not None and i == prev + 1:
            prev = i
            continue
        parts.append(str(start) if start == prev else f"{start}–{prev}")
        if i is not None:
            start = prev = i
    return ", ".join(parts)


class OwnTasks:
    """trajgym's tasks numbered from `base` (base + position in the service's task order)."""

    def __init__(self, task_ids: Sequence[str], base: int) -> None:
        self.task_ids = list(task_ids)
        self.base = base

    def __len__(self) -> int:
        return len(self.task_ids)

    def task_at(self, index: int) -> str | None:
        k = index - self.base
        return self.task_ids[k] if 0 <= k < len(self.task_ids) else None

    def describe(self) -> str:
        n = len(self.task_ids)
        if not n:
            return "no tasks of its own"
        return (f"its own {n} tasks as {self.base}–{self.base + n - 1} "
                f"({self.base} + the task's position in GET /v1/tasks)")


class RangedIndex:
    """An AgentGym numbering whose items trajgym does not hold, followed by trajgym's own tasks."""

    def __init__(self, what: str, ranges: Sequence[NamedRange], task_ids: Sequence[str]) -> None:
        self.what = what
        self.ranges = tuple(ranges)
        self.own = OwnTasks(task_ids, max(r.stop for r in ranges))

    def task_for(self, index: int) -> str:
        task_id = self.own.task_at(index)
        if task_id is not None:
            return task_id
        for r in self.ranges:
            if r.start <= index < r.stop:
                raise UnknownTask(f"{self.what} {index} is a {r.name} item (AgentGym's {r.start}–{r.stop - 1}), which this "
                                  f"service does not hold; it serves {self.own.describe()}")
        raise UnknownTask(f"{self.what} {index} is out of range: this service serves {self.own.describe()}")
