"""What a game asks for, read from its PDDL goal: task type, target, receptacle, lamp.

The six ALFWorld task types are told apart by the goal's shape (isToggled, isClean, isHot,
isCool, two distinct objects), so the expert and the progress rate work on any game file.
"""

from __future__ import annotations

from pydantic import BaseModel

from envs.household.pddl import SExpr

TASK_TYPES = (
    "pick_and_place_simple",
    "look_at_obj_in_light",
    "pick_clean_then_place_in_recep",
    "pick_heat_then_place_in_recep",
    "pick_cool_then_place_in_recep",
    "pick_two_obj_and_place",
)
TRANSFORM = {
    "pick_clean_then_place_in_recep": "clean",
    "pick_heat_then_place_in_recep": "heat",
    "pick_cool_then_place_in_recep": "cool",
}


class TaskInfo(BaseModel):
    task_type: str
    obj_type: str  # PDDL otype, e.g. "mugtype"
    recep_type: str = ""  # PDDL rtype of the destination, e.g. "countertoptype"
    toggle_type: str = ""  # lamp otype for look_at_obj_in_light

    @property
    def transform(self) -> str:
        return TRANSFORM.get(self.task_type, "")


def _atoms(expr: SExpr) -> list[list[str]]:
    if not isinstance(expr, list) or not expr:
        return []
    if expr[0] in ("and", "or", "not"):
        return [a for e in expr[1:] for a in _atoms(e)]
    if expr[0] in ("exists", "forall"):
        return _atoms(expr[2])
    return [[str(x) for x in expr]]


def task_info(goal: SExpr) -> TaskInfo:
    atoms = _atoms(goal)
    preds = {a[0] for a in atoms}
    obj_types = {a[1]: a[2] for a in atoms if a[0] == "objecttype" and len(a) == 3}
    recep_types = [a[2] for a in atoms if a[0] == "receptacletype" and len(a) == 3]
    if "istoggled" in preds:
        lamp_vars = {a[1] for a in atoms if a[0] in ("toggleable", "istoggled")}
        lamp = next((t for v, t in obj_types.items() if v in lamp_vars), "")
        target = next((t for v, t in obj_types.items() if v not in lamp_vars), "")
        return TaskInfo(task_type="look_at_obj_in_light", obj_type=target, toggle_type=lamp)
    if "=" in preds:
        kind = "pick_two_obj_and_place"
    elif "isclean" in preds:
        kind = "pick_clean_then_place_in_recep"
    elif "ishot" in preds:
        kind = "pick_heat_then_place_in_recep"
    elif "iscool" in preds:
        kind = "pick_cool_then_place_in_recep"
    else:
        kind = "pick_and_place_simple"
    target = next(iter(obj_types.values()), "")
    return TaskInfo(task_type=kind, obj_type=target, recep_type=recep_types[0] if recep_types else "")
