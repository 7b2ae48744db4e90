"""Small helpers to read release_handler's answers (charlists, atoms, tagged tuples)."""

from __future__ import annotations

from typing import Any


def text(v: Any) -> str:
    """An Erlang string in any of its Python shapes -> str ("" is [] once decoded)."""
    if isinstance(v, str):
        return str(v)
    if isinstance(v, (bytes, bytearray)):
        return bytes(v).decode("utf-8", "replace")
    if isinstance(v, list):
        return "".join(text(x) if not isinstance(x, int) else chr(x) for x in v)
    from ..term import format_term
    return format_term(v)


def is_tagged(v: Any, tag: str, size: int | None = None) -> bool:
    return (isinstance(v, tuple) and len(v) >= 1 and v[0] == tag
            and (size is None or len(v) == size))


def show(v: Any) -> str:
    from ..term import format_term
    return format_term(v)
