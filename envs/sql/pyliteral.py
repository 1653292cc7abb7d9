"""A bounded stand-in for Python's ``eval`` on answer text: literals and simple expressions only.

AgentBench's DB-bench grader calls ``eval`` on a committed answer that looks like a list. This
evaluates the same text to the same Python value for what answers are made of — numbers, strings,
bytes, ``None``/``True``/``False``, lists, tuples, sets, dicts, unary and arithmetic operators,
comparisons, ``and``/``or``, conditional expressions, indexing, slicing, f-strings without fields — and raises
`LiteralError` for anything else (names, calls, attributes, comprehensions, ...), where
``eval`` would have raised ``NameError`` or run code. Sizes are bounded so that no answer can
make it allocate or compute without limit.
"""

from __future__ import annotations

import ast
import operator
from typing import Any

MAX_TEXT = 100_000
MAX_DEPTH = 50
MAX_SEQUENCE = 100_000  # longest string/sequence an operator may build
MAX_POW_EXPONENT = 1_000
MAX_INT_BITS = 20_000


class LiteralError(ValueError):
    """The text is not something `evaluate` computes (``eval`` would raise or run code)."""


_BINARY = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod, ast.Pow: operator.pow,
    ast.BitAnd: operator.and_, ast.BitOr: operator.or_, ast.BitXor: operator.xor,
}
_UNARY = {ast.USub: operator.neg, ast.UAdd: operator.pos, ast.Invert: operator.invert, ast.Not: operator.not_}
_COMPARE = {
    ast.Eq: operator.eq, ast.NotEq: operator.ne, ast.Lt: operator.lt, ast.LtE: operator.le,
    ast.Gt: operator.gt, ast.GtE: operator.ge, ast.In: lambda a, b: a in b, ast.NotIn: lambda a, b: a not in b,
    ast.Is: operator.is_, ast.IsNot: operator.is_not,
}


def evaluate(text: str) -> Any:
    """The value Python's built-in evaluation of `text` gives, for the expressions listed in the module docstring."""
    if len(text) > MAX_TEXT:
        raise LiteralError("answer too long to evaluate")
    try:
        tree = ast.parse(text.lstrip(" \t"), mode="eval")  # eval() strips leading spaces and tabs too
    except (SyntaxError, ValueError, MemoryError, RecursionError) as err:
        raise LiteralError(str(err)) from err
    return _eval(tree.body, 0)


def _sized(value: Any) -> Any:
    if isinstance(value, (str, bytes, list, tuple)) and len(value) > MAX_SEQUENCE:
        raise LiteralError("value too large")
    return value


def _eval(node: ast.AST, depth: int) -> Any:
    if depth > MAX_DEPTH:
        raise LiteralError("expression nested too deeply")
    d = depth + 1
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.List):
        return [_eval(e, d) for e in _plain(node.elts)]
    if isinstance(node, ast.Tuple):
        return tuple(_eval(e, d) for e in _plain(node.elts))
    if isinstance(node, ast.Set):
        return {_eval(e, d) for e in _plain(node.elts)}
    if isinstance(node, ast.Dict):
        if any(k is None for k in node.keys):
            raise LiteralError("dict unpacking")
        return {_eval(k, d): _eval(v, d) for k, v in zip(node.keys, node.values) if k is not None}
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        return _UNARY[type(node.op)](_eval(node.operand, d))
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        left, right = _eval(node.left, d), _eval(node.right, d)
        return _binary(node.op, left, right)
    if isinstance(node, ast.Compare) and all(type(op) in _COMPARE for op in node.ops):
        left = _eval(node.left, d)
        for op, comp in zip(node.ops, node.comparators):
            right = _eval(comp, d)
            if not _COMPARE[type(op)](left, right):
                return False
            left = right
        return True
    if isinstance(node, ast.BoolOp):
        result: Any = None
        for value in node.values:
            result = _eval(value, d)
            if isinstance(node.op, ast.And) and not result:
                return result
            if isinstance(node.op, ast.Or) and result:
                return result
        return result
    if isinstance(node, ast.IfExp):
        return _eval(node.body, d) if _eval(node.test, d) else _eval(node.orelse, d)
    if isinstance(node, ast.Subscript):
        target = _eval(node.value, d)
        return _sized(target[_eval(node.slice, d)])
    if isinstance(node, ast.JoinedStr) and all(isinstance(v, ast.Constant) for v in node.values):
        return "".join(str(v.value) for v in node.values if isinstance(v, ast.Constant))  # an f-string without fields
    if isinstance(node, ast.Slice):
        return slice(*(None if part is None else _eval(part, d) for part in (node.lower, node.upper, node.step)))
    raise LiteralError(f"{type(node).__name__} is not evaluated")


def _plain(elts: list[ast.expr]) -> list[ast.expr]:
    if any(isinstance(e, ast.Starred) for e in elts):
        raise LiteralError("starred expression")
    return elts


def _binary(op: ast.operator, left: Any, right: Any) -> Any:
    numbers = [v for v in (left, right) if isinstance(v, int)]
    if any(v.bit_length() > MAX_INT_BITS for v in numbers):
        raise LiteralError("number too large")
    if isinstance(op, ast.Pow):
        if not all(isinstance(v, (int, float, complex)) for v in (left, right)):
            raise LiteralError("power of a non-number")
        if isinstance(left, int) and abs(left) > 1 and isinstance(right, int) and right > MAX_POW_EXPONENT:
            raise LiteralError("power too large")
    if isinstance(op, ast.Mult):
        for seq, times in ((left, right), (right, left)):
            if isinstance(seq, (str, bytes, list, tuple)) and isinstance(times, int) and len(seq) * max(times, 0) > MAX_SEQUENCE:
                raise LiteralError("value too large")
    if isinstance(op, ast.Mod) and isinstance(left, (str, bytes)):
        raise LiteralError("string formatting is not evaluated")
    return _sized(_BINARY[type(op)](left, right))
