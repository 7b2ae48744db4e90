"""Erlang terms -> plain JSON values, for `--json` output.

Atoms and charlists become strings, binaries become strings when they are UTF-8 text
(else {"binary_base64": ...}), tuples become lists, maps become objects (keys as text),
pids/refs/ports/funs become their Erlang-syntax string. Lossy on purpose: the `term`
field beside a JSON result keeps the exact Erlang syntax.

Both steps are iterative: a reply nested a million deep converts and prints
(a peer decides the depth, the Python stack must not). :func:`dumps` is
``json.dumps(indent=2)`` where the C encoder can recurse; deeper documents are
written compact (indentation would grow as the square of the depth).
"""

from __future__ import annotations

import base64
from dataclasses import fields, is_dataclass
from enum import Enum
from pathlib import Path
from typing import Any

_PENDING = None  # placeholder a child's converted value replaces


def to_json(value: Any) -> Any:
    """A JSON-ready copy of ``value`` (lists, dicts, str, numbers, bool, None)."""
    root: list[Any] = [_PENDING]
    todo: list[tuple[Any, Any, Any]] = [(value, root, 0)]  # (value, where it goes, key)
    pop, push = todo.pop, todo.append
    while todo:
        v, parent, key = pop()
        ty = type(v)
        if ty is list or ty is tuple:  # the common containers, inline
            n = len(v)
            out = parent[key] = [_PENDING] * n
            if n == 1:
                push((v[0], out, 0))
            else:
                todo.extend(zip(v, [out] * n, range(n)))
        elif ty is int or ty is float or ty is bool or v is None:
            parent[key] = v
        else:
            parent[key] = _convert(v, todo)
    return root[0]


def _convert(value: Any, todo: list) -> Any:
    """One level: a leaf's JSON value, or a container whose children are queued."""
    from .term import types as t

    if value is None or isinstance(value, (bool, int, float)):
        return value
    if isinstance(value, str):  # Atom and charlists included
        return str(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        b = bytes(value)
        try:
            return b.decode("utf-8")
        except UnicodeDecodeError:
            return {"binary_base64": base64.b64encode(b).decode()}
    if isinstance(value, (list, tuple)):
        out = [_PENDING] * len(value)
        todo.extend((v, out, i) for i, v in enumerate(value))
        return out
    if isinstance(value, dict):
        obj: dict[str, Any] = {}
        for k, v in value.items():
            name = _key(k)
            obj[name] = _PENDING
            todo.append((v, obj, name))
        return obj
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, t.ImproperList):
        obj = {"improper_list": [_PENDING] * len(value.elements), "tail": _PENDING}
        todo.extend((v, obj["improper_list"], i) for i, v in enumerate(value.elements))
        todo.append((value.tail, obj, "tail"))
        return obj
    if hasattr(value, "to_json"):
        return value.to_json()
    if is_dataclass(value):  # the term types are not dataclasses: they print in Erlang syntax below
        obj = {f.name: _PENDING for f in fields(value)}
        todo.extend((getattr(value, name), obj, name) for name in obj)
        return obj
    from .term import format_term
    return format_term(value)


def _key(k: Any) -> str:
    if isinstance(k, str):
        return str(k)
    if isinstance(k, (bytes, bytearray)):
        try:
            return bytes(k).decode("utf-8")
        except UnicodeDecodeError:
            pass
    from .term import format_term
    return format_term(k)


def dumps(doc: Any, indent: int = 2) -> str:
    """JSON text of a JSON-ready ``doc`` (as from :func:`to_json`), never recursing."""
    import json

    try:
        return json.dumps(doc, indent=indent, ensure_ascii=False)
    except RecursionError:
        return _dumps_compact(doc)


def _dumps_compact(doc: Any) -> str:
    """``json.dumps(doc, ensure_ascii=False)`` with an explicit stack."""
    import json

    scalar = json.JSONEncoder(ensure_ascii=False).encode
    out: list[str] = []
    todo: list[Any] = [doc]
    while todo:
        v = todo.pop()
        if type(v) is _Text:
            out.append(v)
        elif isinstance(v, list):
            if not v:
                out.append("[]")
                continue
            out.append("[")
            todo.append(_CLOSE)
            for i in range(len(v) - 1, -1, -1):  # pushed last to first: popped in order
                todo.append(v[i])
                if i:
                    todo.append(_SEP)
        elif isinstance(v, dict):
            out.append("{")
            todo.append(_CLOSE_OBJ)
            for i, (k, val) in reversed(list(enumerate(v.items()))):
                todo.append(val)
                todo.append(_Text((", " if i else "") + scalar(str(k)) + ": "))
        else:
            out.append(scalar(v))
    return "".join(out)


class _Text(str):
    """JSON already written (punctuation, keys), as opposed to a string value."""

    __slots__ = ()


_CLOSE, _CLOSE_OBJ, _SEP = _Text("]"), _Text("}"), _Text(", ")
