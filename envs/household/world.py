"""The static part of one game (names, receptacles, types, goal) and its small mutable state.

`World` is built once per game file and shared read-only by every session playing it;
`State` is what one episode changes (agent location, hands, contents, object states).
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from envs.household.names import alfworld_names
from envs.household.pddl import Problem, SExpr, parse_problem

# Predicates an action can change; everything else in :init is static.
DYNAMIC = frozenset({
    "atlocation", "objectatlocation", "opened", "inreceptacle", "holds", "holdsany", "isclean",
    "ishot", "iscool", "ison", "istoggled", "issliced", "checked", "full", "holdsanyreceptacleobject",
    "isreceptacleobjectfull", "wasinreceptacle", "examined",
})
CLEANERS = frozenset({"sinktype", "sinkbasintype"})
HEATERS = frozenset({"microwavetype"})
COOLERS = frozenset({"fridgetype"})
KNIVES = frozenset({"knifetype", "butterknifetype"})

DEFAULT_PUT_TEMPLATE = "move {o} to {r}"
DEFAULT_PUT_FEEDBACK = "You move the {o.name} to the {r.name}."


class GameFormatError(ValueError):
    """The game file is not an ALFWorld TextWorld-PDDL game this engine can play."""


@dataclass
class State:
    """One episode's mutable world state (a few small sets and dicts)."""

    agent_loc: str
    holding: list[str] = field(default_factory=list)
    where: dict[str, set[str]] = field(default_factory=dict)  # object -> receptacles it is in
    obj_locs: dict[str, set[str]] = field(default_factory=dict)  # objectAtLocation
    opened: set[str] = field(default_factory=set)
    clean: set[str] = field(default_factory=set)
    hot: set[str] = field(default_factory=set)
    cool: set[str] = field(default_factory=set)
    on: set[str] = field(default_factory=set)
    toggled: set[str] = field(default_factory=set)
    sliced: set[str] = field(default_factory=set)
    # (object, receptacle) pairs whose inReceptacle fact a pickup deleted: TextWorld keeps such
    # negated facts in its state (until the object goes back in), and ALFWorld's `look` reads them
    taken_from: set[tuple[str, str]] = field(default_factory=set)

    def copy(self) -> State:
        return State(agent_loc=self.agent_loc, holding=list(self.holding),
                     where={o: set(rs) for o, rs in self.where.items()},
                     obj_locs={o: set(ls) for o, ls in self.obj_locs.items()}, opened=set(self.opened),
                     clean=set(self.clean), hot=set(self.hot), cool=set(self.cool), on=set(self.on),
                     toggled=set(self.toggled), sliced=set(self.sliced),
                     taken_from=set(self.taken_from))

    def contents(self, recep: str) -> list[str]:
        return sorted(o for o, rs in self.where.items() if recep in rs)


def _grammar_text(grammar: str, key: str) -> str | None:
    m = re.search(r'"' + re.escape(key) + r'"\s*:\s*\[\s*\{\s*(?:"condition"[^{}]*?)?"rhs"\s*:\s*"((?:[^"\\]|\\.)*)"', grammar)
    return json.loads(f'"{m.group(1)}"') if m else None


def _action_template(grammar: str, action: str) -> str | None:
    m = re.search(r"action\s+" + re.escape(action) + r'\s*\{\s*template\s*::\s*"([^"]*)"', grammar)
    return m.group(1) if m else None


def _help_feedback(grammar: str) -> str | None:
    """The `help` action's feedback when the grammar spells it out as plain text. TextWorld's
    text grammar skips blank space before the first symbol, so leading newlines go."""
    m = re.search(r'action\s+help\s*\{\s*template\s*::\s*"[^"]*"\s*;\s*feedback\s*::\s*"([^"]*)"', grammar)
    if m is None or any(c in m.group(1) for c in "#{}[]"):
        return None  # a rule reference this engine does not derive: use the built-in text
    return m.group(1).lstrip()


def default_help(put_template: str) -> str:
    """ALFWorld's help text (its release grammar), with this game's put command."""
    put = put_template.replace("{o}", "(object)").replace("{r}", "(receptacle)")
    return ("Available commands:\n  look:                             look around your current location\n"
            "  inventory:                        check your current inventory\n"
            "  go to (receptacle):               move to a receptacle\n"
            "  open (receptacle):                open a receptacle\n"
            "  close (receptacle):               close a receptacle\n"
            "  take (object) from (receptacle):  take an object from a receptacle\n"
            f"  {put}:  place an object in or on a receptacle\n"
            "  examine (something):              examine a receptacle or an object\n"
            "  use (object):                     use an object\n"
            "  heat (object) with (receptacle):  heat an object using a receptacle\n"
            "  clean (object) with (receptacle): clean an object using a receptacle\n"
            "  cool (object) with (receptacle):  cool an object using a receptacle\n"
            "  slice (object) with (object):     slice an object using a sharp object\n")


class World:
    """Static facts of one game, with ALFWorld names. Shared read-only between sessions."""

    def __init__(self, game: dict[str, Any], game_id: str = "") -> None:
        for key in ("pddl_problem", "grammar"):
            if not isinstance(game.get(key), str):
                raise GameFormatError(f"game file lacks {key!r}")
        self.game_id = game_id
        problem = parse_problem(game["pddl_problem"])
        self.goal: SExpr = problem.goal
        self.objects_by_type: dict[str, list[str]] = defaultdict(list)
        for name, typ in sorted(problem.objects.items()):
            self.objects_by_type[typ].append(name)
        grammar = game["grammar"]
        self.task_text = self.task_text_of(game)
        self.put_template = _action_template(grammar, "PutObject") or DEFAULT_PUT_TEMPLATE
        self.put_feedback = _grammar_text(grammar, "PutObject.feedback") or DEFAULT_PUT_FEEDBACK
        self.help_text = _help_feedback(grammar) or default_help(self.put_template)
        self._build(problem)

    @staticmethod
    def task_text_of(game: dict[str, Any]) -> str:
        """The task sentence from the grammar's `task` rule, without "Your task is to: "."""
        task = _grammar_text(str(game.get("grammar", "")), "task") or ""
        return task.removeprefix("Your task is to: ").strip()

    # ----- construction -----------------------------------------------------------
    def _build(self, problem: Problem) -> None:
        static: dict[str, set[tuple[str, ...]]] = defaultdict(set)
        dynamic: dict[str, set[tuple[str, ...]]] = defaultdict(set)
        entities: set[str] = set()
        for fact in problem.init:
            pred, args = fact[0], fact[1:]
            entities.update(args)
            (dynamic if pred in DYNAMIC else static)[pred].add(args)
        self.static = {k: frozenset(v) for k, v in static.items()}
        self.names = alfworld_names(entities)
        self.rtype = {r: t for r, t in static["receptacletype"]}
        self.otype = {o: t for o, t in static["objecttype"]}
        self.recep_loc: dict[str, str] = {}
        loc_receps: dict[str, list[str]] = defaultdict(list)
        for r, loc in sorted(static["receptacleatlocation"]):
            self.recep_loc.setdefault(r, loc)
            loc_receps[loc].append(r)
        self.loc_receps = {loc: sorted(rs) for loc, rs in loc_receps.items()}
        self.receptacles = sorted(r for r in self.recep_loc if r in self.names)
        for flag in ("openable", "pickupable", "cleanable", "heatable", "coolable", "toggleable",
                     "sliceable", "isreceptacleobject"):
            setattr(self, flag, frozenset(a[0] for a in static.get(flag, ())))
        self.can_contain = frozenset(static.get("cancontain", ()))
        self.in_recep_obj = sorted(set(static.get("inreceptacleobject", set())) | dynamic.get("inreceptacleobject", set()))
        agents = [a for (a, _) in dynamic.get("atlocation", ())]
        if not agents:
            raise GameFormatError("no (atLocation agent ...) in :init")
        self.agent = min(agents)
        self.by_name = {name: i for i, name in self.names.items()}
        where: dict[str, set[str]] = defaultdict(set)
        for o, r in dynamic.get("inreceptacle", ()):
            where[o].add(r)
        obj_locs: dict[str, set[str]] = defaultdict(set)
        for o, loc in dynamic.get("objectatlocation", ()):
            obj_locs[o].add(loc)

        def unary(pred: str) -> set[str]:
            return {a[0] for a in dynamic.get(pred, ())}

        self._initial = State(
            agent_loc=next(loc for (a, loc) in sorted(dynamic["atlocation"]) if a == self.agent),
            holding=sorted(o for (_, o) in dynamic.get("holds", ())),
            where=dict(where), obj_locs=dict(obj_locs), opened=unary("opened"), clean=unary("isclean"),
            hot=unary("ishot"), cool=unary("iscool"), on=unary("ison"), toggled=unary("istoggled"),
            sliced=unary("issliced"),
        )

    # ----- queries ------------------------------------------------------------------
    def initial_state(self) -> State:
        return self._initial.copy()

    def name(self, entity: str) -> str:
        return self.names.get(entity, entity)

    def accessible(self, recep: str, state: State) -> bool:
        return recep not in self.openable or recep in state.opened

    def receps_here(self, state: State) -> list[str]:
        return self.loc_receps.get(state.agent_loc, [])

    def fits(self, obj: str, recep: str) -> bool:
        return (self.rtype.get(recep, ""), self.otype.get(obj, "")) in self.can_contain

    def facts(self, state: State) -> dict[str, set[tuple[str, ...]] | frozenset[tuple[str, ...]]]:
        """Static + current dynamic facts by predicate, for goal evaluation."""
        facts: dict[str, Any] = dict(self.static)
        facts["atlocation"] = {(self.agent, state.agent_loc)}
        facts["inreceptacle"] = {(o, r) for o, rs in state.where.items() for r in rs}
        facts["objectatlocation"] = {(o, loc) for o, locs in state.obj_locs.items() for loc in locs}
        facts["holds"] = {(self.agent, o) for o in state.holding}
        if state.holding:
            facts["holdsany"] = {(self.agent,)}
        facts["opened"] = {(r,) for r in state.opened}
        for pred, attr in (("isclean", "clean"), ("ishot", "hot"), ("iscool", "cool"), ("ison", "on"),
                           ("istoggled", "toggled"), ("issliced", "sliced")):
            facts[pred] = {(o,) for o in getattr(state, attr)}
        return facts
