"""Reading release_handler's answers: the one home for term-to-text in release code.

`text` is for values that are strings on the Erlang side (charlists, binaries, atoms);
anything else prints in Erlang syntax through `term.format.format_term`, so a list of
integers reads `[1,2,3]` everywhere (never as control characters).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


def text(v: Any) -> str:
    """An Erlang string in any of its Python shapes -> str; None and [] (the empty
    charlist once decoded) -> ""; any other term in Erlang syntax."""
    if v is None or (isinstance(v, list) and not v):
        return ""
    if isinstance(v, str):
        return str(v)
    if isinstance(v, (bytes, bytearray)):
        return bytes(v).decode("utf-8", "replace")
    return show(v)


def show(v: Any) -> str:
    """Any term in Erlang syntax (reasons, replies)."""
    from ..term import format_term
    return format_term(v)


def is_tagged(v: Any, tag: str, size: int | None = None) -> bool:
    return (isinstance(v, tuple) and len(v) >= 1 and v[0] == tag
            and (size is None or len(v) == size))


def error_reason(r: Any) -> Any:
    """R of {error, R}; the reply itself otherwise."""
    return r[1] if is_tagged(r, "error", 2) else r


def current_and_permanent(states: Iterable[tuple[str, str]]) -> tuple[str | None, str | None]:
    """(vsn, state) pairs as which_releases lists them -> (running, permanent).

    The running release is the `current` one while an install is not permanent yet,
    else the permanent one (RELEASES never stores `current`)."""
    pairs = list(states)
    perm = next((v for v, s in pairs if s == "permanent"), None)
    cur = next((v for v, s in pairs if s == "current"), None)
    return cur or perm, perm
