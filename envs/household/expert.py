"""The expert: plans the next command from the current state (never replays a walkthrough).

It knows the whole state, like ALFWorld's planner: pick a target object (and a destination
receptacle), fetch it (go, open, take), transform it (clean/heat/cool), place it (go, open,
put), or for look_at tasks carry it to a lamp and switch the lamp on. Replanning from the
state each call makes it recover from any detour an agent took.
"""

from __future__ import annotations

from envs.household.commands import put_command
from envs.household.task import TaskInfo
from envs.household.world import CLEANERS, COOLERS, HEATERS, State, World

_MACHINES = {"clean": CLEANERS, "heat": HEATERS, "cool": COOLERS}


def _done_state(world: World, state: State, info: TaskInfo, o: str) -> bool:
    t = info.transform
    return (not t or (t == "clean" and o in state.clean) or (t == "heat" and o in state.hot)
            or (t == "cool" and o in state.cool))


def _goto_open(world: World, state: State, r: str) -> str | None:
    """The step that brings the agent to an open `r`, or None if already there."""
    if world.recep_loc.get(r) != state.agent_loc:
        return f"go to {world.name(r)}"
    if not world.accessible(r, state):
        return f"open {world.name(r)}"
    return None


def _by_nearness(world: World, state: State, receps: list[str]) -> list[str]:
    return sorted(receps, key=lambda r: (world.recep_loc.get(r) != state.agent_loc, r in world.openable, r))


def _fetch(world: World, state: State, candidates: list[str]) -> str | None:
    options: list[tuple[tuple[bool, bool, str, str], str, str]] = []
    for o in candidates:
        for r in state.where.get(o, ()):
            if r in world.recep_loc:
                key = (world.recep_loc[r] != state.agent_loc, not world.accessible(r, state), o, r)
                options.append((key, o, r))
    if not options:
        return None
    _, o, r = min(options)
    return _goto_open(world, state, r) or f"take {world.name(o)} from {world.name(r)}"


def _drop(world: World, state: State, o: str) -> str:
    fits = [r for r in world.receptacles if world.fits(o, r)]
    for r in _by_nearness(world, state, fits):
        return _goto_open(world, state, r) or put_command(world, world.name(o), world.name(r))
    return "look"


def _destinations(world: World, info: TaskInfo) -> list[str]:
    return [r for r in world.receptacles
            if world.rtype.get(r) == info.recep_type and (info.recep_type, info.obj_type) in world.can_contain]


def next_action(world: World, state: State, info: TaskInfo) -> str:
    """The expert's next command in `state`."""
    targets = [o for o in world.objects_by_type.get("object", ()) if world.otype.get(o) == info.obj_type
               and o in world.pickupable]
    held = state.holding[0] if state.holding else None
    if info.task_type == "look_at_obj_in_light":
        if held is None or world.otype.get(held) != info.obj_type:
            if held is not None:
                return _drop(world, state, held)
            return _fetch(world, state, targets) or "look"
        lamps = [(r, o) for o in sorted(world.toggleable) if world.otype.get(o) == info.toggle_type
                 for r in sorted(state.where.get(o, ())) if r in world.recep_loc]
        if not lamps:
            return "look"
        r, lamp = min(lamps, key=lambda x: (world.recep_loc[x[0]] != state.agent_loc, x[1] not in state.toggled, x))
        if world.recep_loc[r] != state.agent_loc:
            return f"go to {world.name(r)}"
        return f"use {world.name(lamp)}"

    dests = _destinations(world, info)
    if not dests:
        return "look"
    need = 2 if info.task_type == "pick_two_obj_and_place" else 1
    if need == 2:
        dest = min(dests, key=lambda r: (-sum(1 for o in targets if r in state.where.get(o, ())), r))
        placed = {o for o in targets if dest in state.where.get(o, ())}
    else:
        dest = _by_nearness(world, state, dests)[0]
        placed = {o for o in targets if _done_state(world, state, info, o)
                  and any(r in dests for r in state.where.get(o, ()))}
    if held is not None:
        if world.otype.get(held) == info.obj_type and held not in placed:
            if not _done_state(world, state, info, held):
                machines = [r for r in world.receptacles if world.rtype.get(r) in _MACHINES[info.transform]]
                if not machines:
                    return "look"
                m = _by_nearness(world, state, machines)[0]
                if world.recep_loc[m] != state.agent_loc:
                    return f"go to {world.name(m)}"
                return f"{info.transform} {world.name(held)} with {world.name(m)}"
            return _goto_open(world, state, dest) or put_command(world, world.name(held), world.name(dest))
        return _drop(world, state, held)
    candidates = [o for o in targets if o not in placed]
    if need == 2:
        candidates = [o for o in candidates if dest not in state.where.get(o, ())]
    return _fetch(world, state, candidates) or "look"
