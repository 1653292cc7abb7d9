"""Evaluates a PDDL goal (and / or / not / = / exists / forall over typed variables) on facts.

Existential variables draw their candidates from the facts of a positive atom that mentions
them, so a nested `exists` over objects and receptacles stays cheap.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from envs.household.pddl import PddlError, SExpr, typed_list

Facts = Mapping[str, Any]  # predicate -> set of argument tuples


def _conjuncts(expr: SExpr) -> list[SExpr]:
    if isinstance(expr, list) and expr and expr[0] == "and":
        out: list[SExpr] = []
        for e in expr[1:]:
            out.extend(_conjuncts(e))
        return out
    return [expr]


def _candidates(var: str, body: SExpr, env: dict[str, str], facts: Facts, universe: Sequence[str]) -> list[str]:
    for atom in _conjuncts(body):
        if not isinstance(atom, list) or not atom or atom[0] in ("and", "or", "not", "=", "exists", "forall"):
            continue
        args = atom[1:]
        if var not in args or not all(isinstance(a, str) for a in args):
            continue
        pos = args.index(var)
        values = set()
        for fact in facts.get(str(atom[0]), ()):
            if len(fact) != len(args):
                continue
            ok = True
            for a, v in zip(args, fact):
                a = str(a)
                bound = env.get(a, None if a.startswith("?") else a)
                if bound is not None and bound != v:
                    ok = False
                    break
            if ok:
                values.add(fact[pos])
        return sorted(values)
    return list(universe)


def holds(expr: SExpr, facts: Facts, objects_by_type: Mapping[str, Sequence[str]], env: dict[str, str] | None = None) -> bool:
    """True if `expr` holds; `objects_by_type` enumerates variables no atom constrains."""
    env = env or {}
    if not isinstance(expr, list) or not expr:
        raise PddlError(f"bad goal expression {expr!r}")
    head = expr[0]
    if head == "and":
        return all(holds(e, facts, objects_by_type, env) for e in expr[1:])
    if head == "or":
        return any(holds(e, facts, objects_by_type, env) for e in expr[1:])
    if head == "not":
        return not holds(expr[1], facts, objects_by_type, env)
    if head == "=":
        a, b = (env.get(str(x), str(x)) for x in expr[1:3])
        return a == b
    if head in ("exists", "forall"):
        params = expr[1]
        if not isinstance(params, list):
            raise PddlError("quantifier needs a variable list")
        variables = typed_list(params)
        return _quantify(head == "exists", variables, expr[2], facts, objects_by_type, env)
    args = tuple(env.get(str(a), str(a)) for a in expr[1:])
    return args in facts.get(str(head), ())


def _quantify(exists: bool, variables: list[tuple[str, str]], body: SExpr, facts: Facts,
              objects_by_type: Mapping[str, Sequence[str]], env: dict[str, str]) -> bool:
    if not variables:
        return holds(body, facts, objects_by_type, env)
    (var, typ), rest = variables[0], variables[1:]
    universe = objects_by_type.get(typ, ())
    pool = _candidates(var, body, env, facts, universe) if exists else list(universe)
    allowed = set(universe)
    for value in pool:
        if value not in allowed:
            continue
        result = _quantify(exists, rest, body, facts, objects_by_type, {**env, var: value})
        if exists and result:
            return True
        if not exists and not result:
            return False
    return not exists
