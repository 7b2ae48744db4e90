"""Erlang terms -> plain JSON values, for `--json` output.

Atoms and charlists become strings, binaries become strings when they are UTF-8 text
(else {"binary_base64": ...}), tuples become lists, maps become objects (keys as text),
pids/refs/ports/funs become their Erlang-syntax string. Lossy on purpose: the `term`
field beside a JSON result keeps the exact Erlang syntax.
"""

from __future__ import annotations

import base64
from dataclasses import fields, is_dataclass
from enum import Enum
from pathlib import Path
from typing import Any


def to_json(value: Any) -> Any:
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
        return [to_json(v) for v in value]
    if isinstance(value, dict):
        return {_key(k): to_json(v) for k, v in value.items()}
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, t.ImproperList):
        return {"improper_list": [to_json(v) for v in value.elements], "tail": to_json(value.tail)}
    if hasattr(value, "to_json"):
        return value.to_json()
    if is_dataclass(value):  # the term types are not dataclasses: they print in Erlang syntax below
        return {f.name: to_json(getattr(value, f.name)) for f in fields(value)}
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
