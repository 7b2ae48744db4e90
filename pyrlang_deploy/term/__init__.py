"""Erlang terms in Python: the types and the External Term Format codec.

    encode(term, *, compressed=False) -> bytes      # with the 131 version byte
    encode_body(term, out: bytearray) -> None       # without it (distribution frames)
    decode(data, offset=0) -> (term, next_offset)   # expects 131 at offset
    format_term(term) -> str                        # Erlang syntax
    parse_term(text) -> term                        # Erlang term literals (CLI args)

The Erlang <-> Python mapping is documented in ``types``.
"""

from .decoder import decode
from .encoder import encode, encode_body
from .types import (
    Atom,
    BitString,
    ExportFun,
    ImproperList,
    LocalFun,
    MapKey,
    Pid,
    Port,
    Reference,
)


def __getattr__(name: str):
    # the text side (printer, parser) loads on first use: the CLI's start-up stays short
    if name == "format_term":
        from .format import format_term
        return format_term
    if name == "parse_term":
        from .parse import parse_term
        return parse_term
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "Atom",
    "BitString",
    "ExportFun",
    "ImproperList",
    "LocalFun",
    "MapKey",
    "Pid",
    "Port",
    "Reference",
    "decode",
    "encode",
    "encode_body",
    "format_term",
    "parse_term",
]
