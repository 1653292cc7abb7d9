"""Deterministic generator of new household games in ALFWorld's `game.tw-pddl` format.

`sample_task(seed)` fixes the task (type, room, target, receptacle, text) from the seed alone;
`generate_game(seed)` then lays out a room around it and keeps the first layout the expert
solves, storing the expert's plan as the walkthrough. Same seed → same game, byte for byte.
"""

from __future__ import annotations

import json
import random
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from envs.household.catalog import BASINS, OBJECTS, OPENABLE, ROOMS, TEMPLATES
from envs.household.commands import admissible, apply, won
from envs.household.expert import next_action
from envs.household.names import mangle
from envs.household.task import TASK_TYPES, task_info
from envs.household.world import World

MACHINE = {"pick_clean_then_place_in_recep": ("SinkBasin", "c"), "pick_heat_then_place_in_recep": ("Microwave", "h"),
           "pick_cool_then_place_in_recep": ("Fridge", "k")}
TASK_ROOMS = {
    "look_at_obj_in_light": ("bedroom", "livingroom"),
    "pick_clean_then_place_in_recep": ("kitchen", "bathroom"),
    "pick_heat_then_place_in_recep": ("kitchen",),
    "pick_cool_then_place_in_recep": ("kitchen",),
}
LAMP = "DeskLamp"
MAX_ATTEMPTS = 50
MAX_PLAN = 60


class GeneratorError(RuntimeError):
    pass


class GenTask(BaseModel):
    seed: int
    task_type: str
    room: str
    obj: str  # ALFRED object type, e.g. "Mug"
    recep: str = ""  # ALFRED receptacle type, e.g. "CounterTop"
    toggle: str = ""
    task_text: str

    def pddl_params(self) -> dict[str, Any]:
        return {"object_target": self.obj, "parent_target": self.recep, "toggle_target": self.toggle,
                "mrecep_target": "", "object_sliced": False}

    def dirname(self) -> str:
        return f"{self.task_type}-{self.obj}-None-{self.recep or self.toggle}-gen{self.seed}"


@cache
def _template() -> dict[str, str]:
    """Domain and grammar shared by every generated game (builtin/template.tw-pddl)."""
    data = json.loads(resources.files("envs.household.builtin").joinpath("template.tw-pddl").read_text())
    return {"pddl_domain": data["pddl_domain"], "grammar": data["grammar"]}


def sample_task(seed: int) -> GenTask:
    """The task of generated game `seed` (cheap: no layout)."""
    rng = random.Random(f"household-task-{seed}")
    kind = TASK_TYPES[seed % len(TASK_TYPES)]
    room = rng.choice(TASK_ROOMS.get(kind, tuple(ROOMS)))
    rtypes = [t for t, (_, hi) in ROOMS[room].items() if hi > 0]
    need = MACHINE.get(kind, ("", "p"))[1]
    options: list[tuple[str, str]] = []
    for obj, (props, fits, rooms) in OBJECTS.items():
        if room not in rooms or "p" not in props or need not in props:
            continue
        if kind == "look_at_obj_in_light":
            options.append((obj, ""))
            continue
        for r in fits:
            machine = MACHINE.get(kind, ("",))[0]
            if r in rtypes and r != machine and not (kind in MACHINE and r in BASINS) and any(
                    o in rtypes and o != r for o in fits):
                options.append((obj, r))
    obj, recep = rng.choice(sorted(options))
    toggle = LAMP if kind == "look_at_obj_in_light" else ""
    text = rng.choice(TEMPLATES[kind]).format(obj=obj.lower(), recep=recep.lower(), toggle=toggle.lower())
    return GenTask(seed=seed, task_type=kind, room=room, obj=obj, recep=recep, toggle=toggle, task_text=text)


def _coord(rng: random.Random) -> str:
    return "|".join(f"{rng.uniform(-3.5, 3.5):+06.2f}" for _ in range(3))


def _goal(task: GenTask) -> str:
    t, r = f"{task.obj}Type", f"{task.recep}Type"
    if task.task_type == "look_at_obj_in_light":
        return (f"(and (exists (?ot - object ?r - receptacle ?a - agent ?l - location) (and (objectType ?ot {task.toggle}Type)"
                " (toggleable ?ot) (isToggled ?ot) (receptacleAtLocation ?r ?l) (atLocation ?a ?l) (inReceptacle ?ot ?r)))"
                f" (exists (?o - object ?a - agent) (and (objectType ?o {t}) (holds ?a ?o))))")
    if task.task_type == "pick_two_obj_and_place":
        return (f"(and (exists (?r - receptacle) (exists (?o1 - object) (and (objectType ?o1 {t}) (receptacleType ?r {r})"
                f" (inReceptacle ?o1 ?r) (exists (?o2 - object) (and (not (= ?o1 ?o2)) (objectType ?o2 {t})"
                f" (receptacleType ?r {r}) (inReceptacle ?o2 ?r)))))))")
    extra = {"pick_clean_then_place_in_recep": "(cleanable ?o) (isClean ?o)",
             "pick_heat_then_place_in_recep": "(heatable ?o) (isHot ?o)",
             "pick_cool_then_place_in_recep": "(coolable ?o) (isCool ?o)"}.get(task.task_type, "")
    return (f"(and (exists (?r - receptacle) (exists (?o - object) (and (inReceptacle ?o ?r) (objectType ?o {t})"
            f" (receptacleType ?r {r}) {extra}))))")


def _layout(task: GenTask, rng: random.Random) -> str:
    """One random room around `task`, as PDDL problem text."""
    counts = {t: rng.randint(lo, hi) for t, (lo, hi) in ROOMS[task.room].items()}
    if task.recep:
        counts[task.recep] = max(1, counts[task.recep])
    if task.task_type in MACHINE:
        counts[MACHINE[task.task_type][0]] = max(1, counts.get(MACHINE[task.task_type][0], 0))
    _, fits, _ = OBJECTS[task.obj]
    sources = [r for r in fits if r in counts and r != task.recep]
    if not any(counts[r] for r in sources):
        counts[rng.choice(sorted(sources))] = 1
    if task.toggle and not any(counts.get(r, 0) for r in OBJECTS[task.toggle][1]):
        counts[next(r for r in OBJECTS[task.toggle][1] if r in counts)] = 1

    used: set[str] = set()

    def unique(make: Any) -> str:
        while True:
            value = make()
            if value not in used:
                used.add(value)
                return value

    def new_loc() -> str:
        return mangle(unique(lambda: f"loc|{rng.randint(-12, 12)}|{rng.randint(-12, 12)}|{rng.randint(0, 3)}|"
                                     f"{rng.choice((15, 30, 45, 60))}"))

    receps: list[tuple[str, str, str]] = []  # (id, type, location)
    for rtype in sorted(counts):
        prev_loc = ""
        for _ in range(counts[rtype]):
            coords = unique(lambda: _coord(rng))
            rid = (f"{'Sink' if rtype == 'SinkBasin' else 'Bathtub'}|{coords}|{rtype}" if rtype in BASINS
                   else f"{rtype}|{coords}")
            loc = prev_loc if prev_loc and rtype in OPENABLE and rng.random() < 0.25 else new_loc()
            prev_loc = loc
            receps.append((mangle(rid), rtype, loc))
    by_type: dict[str, list[tuple[str, str, str]]] = {}
    for rec in receps:
        by_type.setdefault(rec[1], []).append(rec)

    objects: list[tuple[str, str, str, str]] = []  # (id, type, recep id, location)
    for otype in sorted(OBJECTS):
        _, ofits, orooms = OBJECTS[otype]
        if task.room not in orooms:
            continue
        if otype == task.obj:
            n = rng.randint(2, 3) if task.task_type == "pick_two_obj_and_place" else rng.randint(1, 3)
        elif otype == task.toggle:
            n = rng.randint(1, 2)
        else:
            n = rng.randint(1, 3) if rng.random() < 0.55 else 0
        places = [rec for t in ofits for rec in by_type.get(t, []) if not (otype == task.obj and t == task.recep)]
        if otype == task.obj and task.task_type in MACHINE:
            places = [p for p in places if p[1] != MACHINE[task.task_type][0]] or places
        if not places:
            continue
        for _ in range(n):
            rid, _, loc = rng.choice(places)
            objects.append((mangle(f"{otype}|{unique(lambda: _coord(rng))}"), otype, rid, loc))

    start = new_loc()
    rtypes = sorted(counts)
    otypes = sorted({o[1] for o in objects})
    lines = [f"(define (problem gen_household_{task.seed})", "(:domain alfred)", "(:objects", "agent1 - agent"]
    lines += [f"        {t}Type - otype" for t in sorted(OBJECTS)]
    lines += [f"        {t}Type - rtype" for t in sorted({t for room in ROOMS.values() for t in room})]
    lines += [f"        {o[0]} - object" for o in objects]
    lines += [f"        {r[0]} - receptacle" for r in receps]
    lines += [f"        {loc} - location" for loc in sorted({r[2] for r in receps} | {start})]
    lines += ["        )", "", "(:init", ""]
    for rid, rtype, loc in receps:
        lines.append(f"        (receptacleType {rid} {rtype}Type)")
        if rtype in OPENABLE:
            lines.append(f"        (openable {rid})")
        lines.append(f"        (receptacleAtLocation {rid} {loc})")
    flags = {"c": "cleanable", "h": "heatable", "k": "coolable", "s": "sliceable", "t": "toggleable", "p": "pickupable"}
    for oid, otype, rid, loc in objects:
        lines.append(f"        (objectType {oid} {otype}Type)")
        lines += [f"        ({flags[f]} {oid})" for f in OBJECTS[otype][0]]
        lines.append(f"        (inReceptacle {oid} {rid})")
        lines.append(f"        (objectAtLocation {oid} {loc})")
    for rtype in rtypes:
        for otype in otypes:
            if rtype in OBJECTS[otype][1]:
                lines.append(f"        (canContain {rtype}Type {otype}Type)")
    lines += [f"        (atLocation agent1 {start})", "        )", "", f"(:goal {_goal(task)})", ")"]
    return "\n".join(lines) + "\n"


def _solve(game: dict[str, Any]) -> list[str] | None:
    world = World(game)
    info = task_info(world.goal)
    state = world.initial_state()
    if won(world, state):
        return None
    plan: list[str] = []
    for _ in range(MAX_PLAN):
        cmd = next_action(world, state, info)
        ops = admissible(world, state)
        if cmd not in ops:
            return None
        apply(world, state, ops[cmd])
        plan.append(cmd)
        if won(world, state):
            return plan
    return None


def generate_game(seed: int) -> tuple[GenTask, dict[str, Any]]:
    """The game of `seed` as a `game.tw-pddl` dict (with walkthrough), plus its task."""
    task = sample_task(seed)
    template = _template()
    grammar = template["grammar"].replace("UNKNOWN GOAL", task.task_text)
    for attempt in range(MAX_ATTEMPTS):
        rng = random.Random(f"household-layout-{seed}-{attempt}")
        game: dict[str, Any] = {"pddl_domain": template["pddl_domain"], "grammar": grammar,
                                "pddl_problem": _layout(task, rng), "solvable": False}
        plan = _solve(game)
        if plan is not None:
            game["solvable"] = True
            game["walkthrough"] = plan
            return task, game
    raise GeneratorError(f"no solvable layout for seed {seed} in {MAX_ATTEMPTS} attempts")


def write_games(out_dir: Path, seeds: list[int], split_of: Any) -> Path:
    """Write games in the published layout: json_2.1.1/<split>/<task>/<trial>/game.tw-pddl + games_index.json."""
    index: dict[str, Any] = {}
    for seed in seeds:
        task, game = generate_game(seed)
        split = split_of(seed)
        rel = f"json_2.1.1/{split}/{task.dirname()}/trial_gen_{seed:06d}"
        path = out_dir / rel
        path.mkdir(parents=True, exist_ok=True)
        (path / "game.tw-pddl").write_text(json.dumps(game))
        index[rel] = {"split": split, "task_type": task.task_type, "pddl_params": task.pddl_params(),
                      "scene": f"Generated-{task.room}", "task_text": task.task_text, "human_task_descs": [],
                      "walkthrough": game["walkthrough"]}
    (out_dir / "games_index.json").write_text(json.dumps(index, indent=1))
    return out_dir
