"""ALFWorld's command semantics and feedback sentences on a `World` + `State`.

`admissible()` lists every applicable command, like TextWorld's admissible commands, mapped
to an operation; `apply()` performs one operation and returns ALFWorld's feedback sentence.
Preconditions and effects follow the ALFWorld PDDL domain (alfred.pddl) action by action.
"""

from __future__ import annotations

from typing import NamedTuple

from envs.household.goal import holds
from envs.household.world import CLEANERS, COOLERS, HEATERS, KNIVES, State, World

NOTHING = "Nothing happens."


class Op(NamedTuple):
    kind: str
    obj: str = ""
    recep: str = ""


def listing(items: list[str]) -> str:
    """TextWorld's list rendering: `a`, `a, and b`, `a, b, and c`; empty → `nothing`."""
    if not items:
        return "nothing"
    if len(items) == 1:
        return items[0]
    return ", ".join(items[:-1]) + ", and " + items[-1]


def put_command(world: World, obj: str, recep: str) -> str:
    return world.put_template.replace("{o}", obj).replace("{r}", recep)


def admissible(world: World, state: State, extended: bool = False) -> dict[str, Op]:
    """Every command applicable in `state`, as ALFWorld lists it, → its operation.

    ALFWorld's list is what TextWorld grounds from the PDDL domain, so two quirks of that
    grounding are kept: `go to` is never offered for a receptacle at the agent's own location
    (that move changes nothing, and the planner drops actions without effects), and `examine`
    an object only applies to the object in hand (the domain's other branch declares its
    location variable with the type `location,`, which no object has). `extended=True` adds
    both back: `examine` every object in an open receptacle here, and `go to` where one is.
    """
    name = world.name
    ops: dict[str, Op] = {"look": Op("look"), "inventory": Op("inventory"), "help": Op("help")}
    for r in world.receptacles:
        if extended or world.recep_loc[r] != state.agent_loc:
            ops[f"go to {name(r)}"] = Op("goto", recep=r)
    here = world.receps_here(state)
    holding = state.holding
    for r in here:
        ops[f"examine {name(r)}"] = Op("examine_r", recep=r)
        if r in world.openable:
            if r in state.opened:
                ops[f"close {name(r)}"] = Op("close", recep=r)
            else:
                ops[f"open {name(r)}"] = Op("open", recep=r)
        contents = state.contents(r)
        for o in contents:
            if o in world.toggleable:
                ops[f"use {name(o)}"] = Op("use", obj=o, recep=r)
        if not world.accessible(r, state):
            continue
        for o in contents:
            if extended:
                ops[f"examine {name(o)}"] = Op("examine_o", obj=o)
            if not holding and o in world.pickupable:
                ops[f"take {name(o)} from {name(r)}"] = Op("take", obj=o, recep=r)
    for o in holding:
        ops[f"examine {name(o)}"] = Op("examine_o", obj=o)
        for r in here:
            rt = world.rtype.get(r, "")
            if world.accessible(r, state) and world.fits(o, r):
                ops[put_command(world, name(o), name(r))] = Op("put", obj=o, recep=r)
            if o in world.cleanable and rt in CLEANERS:
                ops[f"clean {name(o)} with {name(r)}"] = Op("clean", obj=o, recep=r)
            if o in world.heatable and rt in HEATERS:
                ops[f"heat {name(o)} with {name(r)}"] = Op("heat", obj=o, recep=r)
            if o in world.coolable and rt in COOLERS:
                ops[f"cool {name(o)} with {name(r)}"] = Op("cool", obj=o, recep=r)
        if world.otype.get(o) in KNIVES:
            for co in sorted(world.sliceable):
                if state.agent_loc in state.obj_locs.get(co, ()):
                    ops[f"slice {name(co)} with {name(o)}"] = Op("slice", obj=co, recep=o)
    return dict(sorted(ops.items()))


def describe_receptacle(world: World, state: State, r: str) -> str:
    rn = world.name(r)
    items = listing([f"a {world.name(o)}" for o in state.contents(r)])
    if r in world.openable:
        return f"The {rn} is open. In it, you see {items}." if r in state.opened else f"The {rn} is closed."
    return f"On the {rn}, you see {items}."


def describe_object(world: World, state: State, o: str) -> str:
    on = world.name(o)
    if o in world.isreceptacleobject:
        inner = [f"a {world.name(i)}" for i, outer in world.in_recep_obj if outer == o]
        return f"This is a normal {on}. In it, you see {listing(inner)}."
    c, h, k, s = o in state.clean, o in state.hot, o in state.cool, o in state.sliced
    if c and h and s:
        return f"This is a hot and clean sliced {on}."
    if c and k and s:
        return f"This is a cool and clean sliced {on}."
    if c and s:
        return f"This is a clean sliced {on}."
    if h and s:
        return f"This is a hot sliced {on}."
    if k and s:
        return f"This is a cool sliced {on}."
    if c and h:
        return f"This is a hot and clean {on}."
    if c and k:
        return f"This is a cool and clean {on}."
    if h:
        return f"This is a hot {on}."
    if c:
        return f"This is a clean {on}."
    if k:
        return f"This is a cold {on}."
    if o in world.toggleable and o in state.toggled:
        return f"This {on} is on."
    # TextWorld keeps no negative facts, so ALFWorld's "is off" rule never fires.
    if o in world.sliceable and s:
        return f"This is a sliced {on}."
    return f"There's nothing special about {on}."


def floor(world: World, state: State) -> str:
    """ALFWorld's "objects on the floor": an object at the agent's location that was once taken
    from a receptacle here (TextWorld's negated `inReceptacle` fact, see `State.taken_from`), once
    per such receptacle, though it now lies in another one; usually nothing."""
    here = world.receps_here(state)
    seen = [f"a {world.name(o)}" for o in sorted(state.obj_locs) if state.agent_loc in state.obj_locs[o]
            for r in here if (o, r) in state.taken_from]
    return listing(seen)


def look(world: World, state: State, intro: bool = False) -> str:
    """ALFWorld's `look` text. Away from every receptacle, the game's opening lists all of them
    (its `look` rule runs with no location bound), while the `look` command lists those at the
    agent's own location only: none, so "you see nothing"."""
    here = world.receps_here(state)
    if here:
        return f"You are facing the {listing([world.name(r) for r in here])}. Next to it, you see {floor(world, state)}."
    seen = listing([f"a {world.name(r)}" for r in world.receptacles]) if intro else "nothing"
    return f"You are in the middle of a room. Looking quickly around you, you see {seen}."


def inventory(world: World, state: State) -> str:
    if not state.holding:
        return "You are not carrying anything."
    return f"You are carrying: {listing([f'a {world.name(o)}' for o in state.holding])}."


def apply(world: World, state: State, op: Op) -> str:
    """Perform an admissible operation on `state` (in place) and return the feedback."""
    n = world.name
    o, r = op.obj, op.recep
    if op.kind == "look":
        return look(world, state)
    if op.kind == "inventory":
        return inventory(world, state)
    if op.kind == "help":
        return world.help_text
    if op.kind == "goto":
        state.agent_loc = world.recep_loc[r]
        return f"You arrive at {n(r)}. {describe_receptacle(world, state, r)}"
    if op.kind == "examine_r":
        return describe_receptacle(world, state, r)
    if op.kind == "examine_o":
        return describe_object(world, state, o)
    if op.kind == "open":
        state.opened.add(r)
        return f"You open the {n(r)}. {describe_receptacle(world, state, r)}"
    if op.kind == "close":
        state.opened.discard(r)
        return f"You close the {n(r)}."
    if op.kind == "take":
        state.where.get(o, set()).discard(r)
        if not state.where.get(o):
            state.where.pop(o, None)
        state.obj_locs.get(o, set()).discard(state.agent_loc)
        state.taken_from.add((o, r))
        state.holding = [o]
        return f"You pick up the {n(o)} from the {n(r)}."
    if op.kind == "put":
        state.where.setdefault(o, set()).add(r)
        state.obj_locs.setdefault(o, set()).add(state.agent_loc)
        state.taken_from.discard((o, r))
        state.holding = [h for h in state.holding if h != o]
        return world.put_feedback.replace("{o.name}", n(o)).replace("{r.name}", n(r))
    if op.kind == "clean":
        state.clean.add(o)
        return f"You clean the {n(o)} using the {n(r)}."
    if op.kind == "heat":
        state.hot.add(o)
        state.cool.discard(o)
        return f"You heat the {n(o)} using the {n(r)}."
    if op.kind == "cool":
        state.cool.add(o)
        state.hot.discard(o)
        return f"You cool the {n(o)} using the {n(r)}."
    if op.kind == "use":
        if o in state.on:
            state.on.discard(o)
        else:
            state.on.add(o)
        state.toggled.add(o)
        return f"You turn on the {n(o)}." if o in state.toggled else f"You turn off the {n(o)}."
    if op.kind == "slice":
        state.sliced.add(o)
        return f"You sliced the {n(o)} with the {n(r)}."
    return NOTHING


def won(world: World, state: State) -> bool:
    return holds(world.goal, world.facts(state), world.objects_by_type)
