"""Evaluates a PDDL goal (and / or / not / = / exists / forall over typed variables) on facts.

Nested `exists` are merged, and at each step the variable with the fewest candidates is bound
next, its candidates being the values that every positive atom mentioning it allows — so the
nested object/receptacle quantifiers of ALFWorld goals stay cheap.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from envs.household.pddl import PddlError, SExpr, typed_list

Facts = Mapping[str, Any]  # predicate -> set of argument tuples
_CONNECTIVES = ("and", "or", "not", "=", "exists", "forall")


def _conjuncts(expr: SExpr) -> list[SExpr]:
    if isinstance(expr, list) and expr and expr[0] == "and":
        out: list[SExpr] = []
        for e in expr[1:]:
            out.extend(_conjuncts(e))
        return out
    return [expr]


def _allowed(var: str, atom: list[str], env: dict[str, str], facts: Facts) -> set[str]:
    pos = atom.index(var) - 1
    args = atom[1:]
    values: set[str] = set()
    for fact in facts.get(atom[0], ()):
        if len(fact) != len(args):
            continue
        for a, v in zip(args, fact):
            bound = env.get(a) if a.startswith("?") else a
            if bound is not None and bound != v:
                break
        else:
            values.add(fact[pos])
    return values


def _candidates(var: str, atoms: list[list[str]], env: dict[str, str], facts: Facts, universe: Sequence[str]) -> list[str]:
    allowed: set[str] | None = None
    for atom in atoms:
        if var in atom[1:]:
            values = _allowed(var, atom, env, facts)
            allowed = values if allowed is None else allowed & values
            if not allowed:
                return []
    if allowed is None:
        return list(universe)
    members = set(universe)
    return sorted(v for v in allowed if v in members)


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
        if not isinstance(expr[1], list) or len(expr) != 3:
            raise PddlError("a quantifier needs a variable list and a body")
        variables, body = typed_list(expr[1]), expr[2]
        if head == "exists":
            while isinstance(body, list) and body and body[0] == "exists":  # exists x (exists y B) = exists x y B
                variables += typed_list(body[1])  # type: ignore[arg-type]
                body = body[2]
            return _exists(dict(variables), body, facts, objects_by_type, env)
        return _forall(variables, body, facts, objects_by_type, env)
    args = tuple(env.get(str(a), str(a)) for a in expr[1:])
    return args in facts.get(str(head), ())


def _exists(variables: dict[str, str], body: SExpr, facts: Facts, objects_by_type: Mapping[str, Sequence[str]],
            env: dict[str, str]) -> bool:
    if not variables:
        return holds(body, facts, objects_by_type, env)
    atoms = [[str(x) for x in a] for a in _conjuncts(body)
             if isinstance(a, list) and a and a[0] not in _CONNECTIVES and all(isinstance(x, str) for x in a)]
    best: tuple[str, list[str]] | None = None
    for var, typ in variables.items():
        cands = _candidates(var, atoms, env, facts, objects_by_type.get(typ, ()))
        if best is None or len(cands) < len(best[1]):
            best = (var, cands)
        if not cands:
            return False
    assert best is not None
    var, cands = best
    rest = {v: t for v, t in variables.items() if v != var}
    return any(_exists(rest, body, facts, objects_by_type, {**env, var: value}) for value in cands)


def _forall(variables: list[tuple[str, str]], body: SExpr, facts: Facts, objects_by_type: Mapping[str, Sequence[str]],
            env: dict[str, str]) -> bool:
    if not variables:
        return holds(body, facts, objects_by_type, env)
    (var, typ), rest = variables[0], variables[1:]
    return all(_forall(rest, body, facts, objects_by_type, {**env, var: value}) for value in objects_by_type.get(typ, ()))
