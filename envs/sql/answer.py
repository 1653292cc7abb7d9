"""Lenient parsing of a submitted answer (``submit[...]``) into values or rows. Nothing is evaluated.

Accepted forms, tried in order:

1. JSON: a scalar, a list of scalars, or a list of lists (rows).
2. Bracketed Python-like literals: ``[('Paris', 3), ('Rome', 2)]``, ``(1, 2)`` — parsed by a
   small tokenizer (quoted strings with '' or "", bare words, numbers; never `eval`).
3. Plain text: several lines are rows whose values are separated by ``|``, a tab or a
   comma; a single line is a comma-separated list of values (``Paris, Rome``).

The result is a list whose items are scalars (a flat answer) or lists (rows). With
``typed=True`` (official grading, which compares values exactly) an unquoted token of forms 2
and 3 that reads as a number becomes that int or float, and an unquoted ``NULL``/``None``/``null``
becomes None; quoted tokens stay text. Without it every non-JSON token is text (lenient grading
normalises values itself).
"""

from __future__ import annotations

import json
import re
from typing import Any

Parsed = list[Any]
_INT = re.compile(r"^[-+]?(0|[1-9][0-9]*)$")
_FLOAT = re.compile(r"^[-+]?([0-9]+\.[0-9]*|\.[0-9]+|[0-9]+)([eE][-+]?[0-9]+)?$")
_NULL_WORDS = ("None", "null", "NULL")


def bare_value(token: str, typed: bool) -> Any:
    """An unquoted token: text, or (typed) the number or None it spells."""
    if not typed or len(token) > 400:
        return token
    if token in _NULL_WORDS:
        return None
    if _INT.match(token):
        return int(token)
    if _FLOAT.match(token):
        return float(token)
    return token


def parse_answer(text: str, typed: bool = False) -> Parsed:
    text = text.strip()
    if not text:
        return []
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        pass
    else:
        return _as_list(value)
    if text[0] in "[(":
        try:
            value, end = _parse_value(text, 0, typed=typed)
        except ValueError:
            pass
        else:
            if not text[end:].strip():
                return _as_list(value)
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and set(ln.strip()) - set("-|+: ")]
    if len(lines) > 1:
        return [_split_line(ln, typed) for ln in lines]
    return _split_line(lines[0], typed) if lines else []


def _as_list(value: Any) -> Parsed:
    if isinstance(value, (list, tuple)):
        return [list(v) if isinstance(v, (list, tuple)) else _scalar(v) for v in value]
    return [_scalar(value)]


def _scalar(value: Any) -> Any:
    if isinstance(value, dict):
        return json.dumps(value, sort_keys=True)
    if isinstance(value, (list, tuple)):
        return json.dumps(value)
    return value


def _split_line(line: str, typed: bool = False) -> list[Any]:
    for sep in ("|", "\t"):
        if sep in line:
            return [_unquote(v, typed) for v in line.strip(sep).split(sep)]
    if line[0] in "[(":
        try:
            value, end = _parse_value(line, 0, typed=typed)
            if not line[end:].strip():
                return value if isinstance(value, list) else [value]
        except ValueError:
            pass
    return [_unquote(v, typed) for v in _split_commas(line)]


def _split_commas(line: str) -> list[str]:
    """Split at commas outside quotes."""
    out: list[str] = []
    buf: list[str] = []
    quote = ""
    for ch in line:
        if quote:
            buf.append(ch)
            if ch == quote:
                quote = ""
        elif ch in "'\"":
            quote = ch
            buf.append(ch)
        elif ch == ",":
            out.append("".join(buf))
            buf = []
        else:
            buf.append(ch)
    out.append("".join(buf))
    return out


def _unquote(token: str, typed: bool = False) -> Any:
    token = token.strip()
    if len(token) >= 2 and token[0] == token[-1] and token[0] in "'\"":
        return token[1:-1]
    return bare_value(token, typed)


def _skip_ws(text: str, i: int) -> int:
    while i < len(text) and text[i].isspace():
        i += 1
    return i


def _parse_value(text: str, i: int, depth: int = 0, typed: bool = False) -> tuple[Any, int]:
    if depth > 3:
        raise ValueError("nested too deep")
    i = _skip_ws(text, i)
    if i >= len(text):
        raise ValueError("unexpected end")
    ch = text[i]
    if ch in "[(":
        close = "]" if ch == "[" else ")"
        items: list[Any] = []
        i = _skip_ws(text, i + 1)
        if i < len(text) and text[i] == close:
            return items, i + 1
        while True:
            item, i = _parse_value(text, i, depth + 1, typed)
            items.append(item)
            i = _skip_ws(text, i)
            if i < len(text) and text[i] == ",":
                i = _skip_ws(text, i + 1)
                if i < len(text) and text[i] == close:  # trailing comma
                    return items, i + 1
                continue
            if i < len(text) and text[i] == close:
                return items, i + 1
            raise ValueError(f"expected ',' or {close!r} at {i}")
    if ch in "'\"":
        out: list[str] = []
        j = i + 1
        while j < len(text):
            if text[j] == "\\" and j + 1 < len(text):
                out.append(text[j + 1])
                j += 2
                continue
            if text[j] == ch:
                if j + 1 < len(text) and text[j + 1] == ch:  # SQL-style doubled quote
                    out.append(ch)
                    j += 2
                    continue
                return "".join(out), j + 1
            out.append(text[j])
            j += 1
        raise ValueError("unterminated string")
    j = i
    while j < len(text) and text[j] not in ",)]":
        j += 1
    token = text[i:j].strip()
    if token in _NULL_WORDS:
        return None, j
    return bare_value(token, typed), j
