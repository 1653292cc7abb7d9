"""A small PDDL reader for the problems ALFWorld game files use: objects, init facts, goal.

Names are lower-cased, as Fast Downward does, so ids match the ones TextWorld names from.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass, field
from typing import Union

SExpr = Union[str, list["SExpr"]]  # noqa: UP007 (a recursive alias needs Union)

_TOKEN = re.compile(r"\(|\)|[^\s()]+")


class PddlError(ValueError):
    """The PDDL text is not the shape this reader understands."""


def parse_sexpr(text: str) -> SExpr:
    """Parse one s-expression (comments after ';' are dropped)."""
    text = re.sub(r";[^\n]*", "", text).lower()
    stack: list[list[SExpr]] = [[]]
    for tok in _TOKEN.findall(text):
        if tok == "(":
            stack.append([])
        elif tok == ")":
            if len(stack) == 1:
                raise PddlError("unbalanced ')'")
            done = stack.pop()
            stack[-1].append(done)
        else:
            stack[-1].append(sys.intern(tok))
    if len(stack) != 1 or len(stack[0]) != 1:
        raise PddlError("expected exactly one balanced s-expression")
    return stack[0][0]


def typed_list(items: list[SExpr]) -> list[tuple[str, str]]:
    """`a b - t c - u` → [(a, t), (b, t), (c, u)]; untyped names get type 'object'."""
    out: list[tuple[str, str]] = []
    pending: list[str] = []
    i = 0
    while i < len(items):
        tok = items[i]
        if not isinstance(tok, str):
            raise PddlError(f"unexpected list in typed list: {tok!r}")
        if tok == "-":
            if i + 1 >= len(items) or not isinstance(items[i + 1], str):
                raise PddlError("'-' without a type")
            out.extend((name, str(items[i + 1])) for name in pending)
            pending = []
            i += 2
            continue
        pending.append(tok)
        i += 1
    out.extend((name, "object") for name in pending)
    return out


@dataclass
class Problem:
    """The parts of a PDDL problem the engine needs."""

    name: str
    objects: dict[str, str] = field(default_factory=dict)  # name -> type
    init: list[tuple[str, ...]] = field(default_factory=list)
    goal: SExpr = field(default_factory=list)


def parse_problem(text: str) -> Problem:
    expr = parse_sexpr(text)
    if not isinstance(expr, list) or not expr or expr[0] != "define":
        raise PddlError("a problem starts with (define ...)")
    problem = Problem(name="")
    for part in expr[1:]:
        if not isinstance(part, list) or not part:
            continue
        head = part[0]
        if head == "problem" and len(part) > 1:
            problem.name = str(part[1])
        elif head == ":objects":
            problem.objects = dict(typed_list(part[1:]))
        elif head == ":init":
            for fact in part[1:]:
                if not isinstance(fact, list) or not fact or not all(isinstance(a, str) for a in fact):
                    continue  # numeric fluents such as (= (total-cost) 0) carry no state we use
                if fact[0] == "=":
                    continue
                problem.init.append(tuple(str(a) for a in fact))
        elif head == ":goal":
            if len(part) != 2:
                raise PddlError(":goal takes one expression")
            problem.goal = part[1]
    if not problem.goal:
        raise PddlError("problem has no :goal")
    return problem
