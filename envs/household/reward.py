"""Reward and AgentBoard-style progress rate from a task's subgoals.

Reward is 1.0 on the step the PDDL goal first holds (ALFWorld's `won`), else 0.0. Progress is
the fraction of subgoals reached so far; a subgoal once reached stays counted, so progress
never decreases, and it is 1.0 once the game is won.
"""

from __future__ import annotations

from collections.abc import Callable

from envs.household.task import TaskInfo
from envs.household.world import State, World

Check = Callable[[World, State], bool]


def _of_type(world: World, objs: object, otype: str) -> list[str]:
    return [o for o in objs if world.otype.get(o) == otype]  # type: ignore[union-attr]


def subgoals(info: TaskInfo) -> list[tuple[str, Check]]:
    """Named checks in task order; the last one is always the goal itself (checked by the env)."""
    t = info.obj_type

    def holding_target(w: World, s: State) -> bool:
        return bool(_of_type(w, s.holding, t))

    def transformed(w: World, s: State) -> bool:
        done = {"clean": s.clean, "heat": s.hot, "cool": s.cool}[info.transform]
        return bool(_of_type(w, done, t))

    def one_placed(w: World, s: State) -> bool:
        return any(w.otype.get(o) == t and any(w.rtype.get(r) == info.recep_type for r in rs)
                   for o, rs in s.where.items())

    def lamp_on(w: World, s: State) -> bool:
        return bool(_of_type(w, s.toggled, info.toggle_type))

    goals: list[tuple[str, Check]] = [(f"hold a {t.removesuffix('type')}", holding_target)]
    if info.transform:
        goals.append((f"{info.transform} the {t.removesuffix('type')}", transformed))
    if info.task_type == "pick_two_obj_and_place":
        goals.append((f"place one {t.removesuffix('type')}", one_placed))
    if info.task_type == "look_at_obj_in_light":
        goals.append(("turn on the lamp", lamp_on))
    return goals


class ProgressTracker:
    """Remembers which subgoals were reached during one episode."""

    def __init__(self, info: TaskInfo) -> None:
        self.checks = subgoals(info)
        self.reached: set[int] = set()
        self.won = False

    def update(self, world: World, state: State, won: bool) -> float:
        for i, (_, check) in enumerate(self.checks):
            if i not in self.reached and check(world, state):
                self.reached.add(i)
        self.won = self.won or won
        return self.rate()

    def rate(self) -> float:
        if self.won:
            return 1.0
        return len(self.reached) / (len(self.checks) + 1)


def step_reward(won: bool) -> float:
    return 1.0 if won else 0.0
