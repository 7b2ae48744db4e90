"""Encoder for the External Term Format.

Builds into one bytearray. Iterative: containers push their parent's iterator
on a stack and the loop resumes it when they are done, so depth costs memory,
not Python stack. Exact built-in types are dispatched inline; everything else
(Pid, ImproperList, subclasses, ...) goes through ``_other``.
"""

from __future__ import annotations

import gc
import struct
import zlib
from collections.abc import Iterator
from itertools import chain

from ..errors import EncodeError
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

TYPE_CHECKING = False  # typing is not imported at run time: see cli/fastpath.py
if TYPE_CHECKING:
    from typing import Any

# Nesting this deep only comes from odd or hostile input. Millions of live
# containers make the cyclic GC rescan them over and over (3-5x slower), and
# nothing built here can form a cycle: pause it for the rest of the call.
_DEEP = 10_000


def _pause_gc() -> bool:
    if gc.isenabled():
        gc.disable()
        return True
    return False


_tag_u32 = struct.Struct(">BI").pack  # tag + 32-bit length/value
_tag_i32 = struct.Struct(">Bi").pack
_tag_f64 = struct.Struct(">Bd").pack
_tag_u16 = struct.Struct(">BH").pack
_u32 = struct.Struct(">I").pack

_SMALL_INTS = [bytes((97, i)) for i in range(256)]
_NIL_TAIL = ([],)  # appended to a list's elements: [] encodes as NIL_EXT
_MAX_ATOM_CHARS = 255

_ATOM_BYTES: dict[str, bytes] = {}
_ATOM_CACHE_MAX = 65536


def _atom_bytes(name: str) -> bytes:
    """SMALL_ATOM_UTF8 / ATOM_UTF8 encoding of an atom name (cached)."""
    encoded = _ATOM_BYTES.get(name)
    if encoded is not None:
        return encoded
    if len(name) > _MAX_ATOM_CHARS:
        raise EncodeError(f"atom longer than {_MAX_ATOM_CHARS} characters: {name[:40]!r}...")
    try:
        raw = name.encode("utf-8")
    except UnicodeEncodeError:
        raise EncodeError(f"atom is not valid Unicode text: {name!r}") from None
    encoded = (bytes((119, len(raw))) if len(raw) < 256 else _tag_u16(118, len(raw))) + raw
    if len(_ATOM_BYTES) >= _ATOM_CACHE_MAX:
        _ATOM_BYTES.clear()
    _ATOM_BYTES[str(name)] = encoded
    return encoded


_TRUE = _atom_bytes("true")
_FALSE = _atom_bytes("false")
_UNDEFINED = _atom_bytes("undefined")


def _big(value: int, out: bytearray) -> None:
    magnitude = -value if value < 0 else value
    n = (magnitude.bit_length() + 7) // 8
    digits = magnitude.to_bytes(n, "little")
    if n < 256:
        out += bytes((110, n, value < 0))
    else:
        out += _tag_u32(111, n)
        out.append(value < 0)
    out += digits


def _charlist(text: str, out: bytearray) -> None:
    """A str is a list of code points: STRING_EXT when they fit in bytes."""
    if not text:
        out.append(106)
        return
    n = len(text)
    if n < 65536:
        try:
            raw = text.encode("latin-1")
        except UnicodeEncodeError:
            pass
        else:
            out += _tag_u16(107, n)
            out += raw
            return
    out += _tag_u32(108, n)
    small = _SMALL_INTS
    for ch in text:
        code = ord(ch)
        out += small[code] if code < 256 else _tag_i32(98, code)
    out.append(106)


def _int(value: int, out: bytearray) -> None:
    if 0 <= value < 256:
        out += _SMALL_INTS[value]
    elif -2147483648 <= value <= 2147483647:
        out += _tag_i32(98, value)
    else:
        _big(value, out)


def _u32_field(value: int, what: str) -> bytes:
    if not 0 <= value < 1 << 32:
        raise EncodeError(f"{what} {value} does not fit in 32 bits")
    return _u32(value)


def _other(term: Any, out: bytearray) -> Iterator[Any] | None:
    """Encode a value the inline dispatch does not know.

    Returns an iterator over sub-terms still to encode, or None when done.
    """
    kind = type(term)
    if kind is Pid:
        out.append(88)  # NEW_PID
        out += _atom_bytes(term.node)
        out += _u32_field(term.id, "pid id")
        out += _u32_field(term.serial, "pid serial")
        out += _u32_field(term.creation, "pid creation")
        return None
    if kind is Reference:
        ids = term.ids
        if not 1 <= len(ids) <= 5:
            raise EncodeError(f"reference with {len(ids)} id words (1 to 5 allowed)")
        out += _tag_u16(90, len(ids))  # NEWER_REFERENCE
        out += _atom_bytes(term.node)
        out += _u32_field(term.creation, "reference creation")
        for word in ids:
            out += _u32_field(word, "reference word")
        return None
    if kind is Port:
        if 0 <= term.id < 1 << 32:
            out.append(89)  # NEW_PORT
            out += _atom_bytes(term.node)
            out += _u32(term.id)
        elif 0 <= term.id < 1 << 64:
            out.append(120)  # V4_PORT
            out += _atom_bytes(term.node)
            out += struct.pack(">Q", term.id)
        else:
            raise EncodeError(f"port id {term.id} does not fit in 64 bits")
        out += _u32_field(term.creation, "port creation")
        return None
    if kind is ImproperList:
        if not term.elements:
            return iter((term.tail,))  # [ | T] is just T
        out += _tag_u32(108, len(term.elements))
        return chain(term.elements, (term.tail,))
    if kind is MapKey:
        return iter((term.term,))
    if kind is BitString:
        data, bits = term.data, term.bits
        if bits == 8:
            out += _tag_u32(109, len(data))
            out += data
            return None
        if not data or not 1 <= bits <= 7:
            raise EncodeError(f"bitstring needs data and 1..8 bits in its last byte, got {bits}")
        out += _tag_u32(77, len(data))
        out.append(bits)
        out += data[:-1]
        out.append(data[-1] & (0xFF << (8 - bits)) & 0xFF)
        return None
    if kind is ExportFun:
        if not 0 <= term.arity < 256:
            raise EncodeError(f"fun arity {term.arity} out of range")
        out.append(113)
        out += _atom_bytes(term.module)
        out += _atom_bytes(term.function)
        out += _SMALL_INTS[term.arity]
        return None
    if kind is LocalFun:
        out += term.raw
        return None
    # Subclasses of the built-in types, checked in an order that keeps bool
    # away from int and Atom away from str.
    if isinstance(term, bool):
        out += _TRUE if term else _FALSE
    elif isinstance(term, int):
        _int(int(term), out)
    elif isinstance(term, float):
        if term - term:
            raise EncodeError(f"Erlang has no float {term!r}")
        out += _tag_f64(70, term)
    elif isinstance(term, Atom):
        out += _atom_bytes(term)
    elif isinstance(term, str):
        _charlist(str(term), out)
    elif isinstance(term, (bytes, bytearray, memoryview)):
        raw = bytes(term)
        out += _tag_u32(109, len(raw))
        out += raw
    elif isinstance(term, tuple):
        return iter((tuple(term),))
    elif isinstance(term, list):
        return iter((list(term),))
    elif isinstance(term, dict):
        return iter((dict(term),))
    else:
        raise EncodeError(f"no Erlang term for a Python {kind.__name__}")
    return None


def encode_body(term: Any, out: bytearray, *, _sort_maps: bool = False) -> None:
    """Append the encoding of ``term`` to ``out``, without the 131 version byte."""
    small = _SMALL_INTS
    atoms = _ATOM_BYTES
    stack: list[Iterator[Any]] = []
    it: Iterator[Any] = iter((term,))
    paused = False
    try:
        while True:
            for t in it:
                ty = type(t)
                if ty is int:
                    if 0 <= t < 256:
                        out += small[t]
                    elif -2147483648 <= t <= 2147483647:
                        out += _tag_i32(98, t)
                    else:
                        _big(t, out)
                elif ty is Atom:
                    encoded = atoms.get(t)
                    out += encoded if encoded is not None else _atom_bytes(t)
                elif ty is tuple:
                    n = len(t)
                    if n < 256:
                        out.append(104)
                        out.append(n)
                    else:
                        out += _tag_u32(105, n)
                    if n:
                        stack.append(it)
                        if len(stack) == _DEEP and not paused:
                            paused = _pause_gc()
                        it = iter(t)
                        break
                elif ty is bytes:
                    out += _tag_u32(109, len(t))
                    out += t
                elif ty is float:
                    if t - t:
                        raise EncodeError(f"Erlang has no float {t!r}")
                    out += _tag_f64(70, t)
                elif ty is list:
                    n = len(t)
                    if not n:
                        out.append(106)
                        continue
                    if type(t[0]) is int and n < 65536 and all(
                        type(x) is int and 0 <= x < 256 for x in t
                    ):
                        out += _tag_u16(107, n)  # what term_to_binary does for [1,2,3]
                        out += bytes(t)
                        continue
                    out += _tag_u32(108, n)
                    stack.append(it)
                    if len(stack) == _DEEP and not paused:
                        paused = _pause_gc()
                    it = chain(t, _NIL_TAIL)
                    break
                elif ty is str:
                    _charlist(t, out)
                elif ty is bool:
                    out += _TRUE if t else _FALSE
                elif ty is dict:
                    out += _tag_u32(116, len(t))
                    if t:
                        stack.append(it)
                        if len(stack) == _DEEP and not paused:
                            paused = _pause_gc()
                        if _sort_maps:
                            pairs = sorted(t.items(), key=lambda kv: canonical_bytes(kv[0]))
                        else:
                            pairs = t.items()
                        it = chain.from_iterable(pairs)
                        break
                elif t is None:
                    out += _UNDEFINED
                else:
                    sub = _other(t, out)
                    if sub is not None:
                        stack.append(it)
                        if len(stack) == _DEEP and not paused:
                            paused = _pause_gc()
                        it = sub
                        break
            else:
                if not stack:
                    return
                it = stack.pop()
    finally:
        if paused:
            gc.enable()


def canonical_bytes(term: Any) -> bytes:
    """Encoding with map pairs in a fixed order: equal Erlang terms, equal bytes.

    Identity for MapKey; not meant for the wire (it is slower).
    """
    out = bytearray()
    encode_body(term, out, _sort_maps=True)
    return bytes(out)


def encode(term: Any, *, compressed: bool | int = False) -> bytes:
    """The full external term: 131, then the body (zlib-compressed, tag 80,
    when ``compressed`` is True or a level 1..9 and it actually shrinks)."""
    out = bytearray(b"\x83")
    encode_body(term, out)
    if compressed is False or compressed is None:
        return bytes(out)
    level = 6 if compressed is True else compressed
    if type(level) is not int or not 0 <= level <= 9:
        raise EncodeError(f"compression level must be 0..9, got {compressed!r}")
    if level == 0:
        return bytes(out)
    body = memoryview(out)[1:]
    packed = zlib.compress(body, level)
    if 4 + len(packed) < len(body):
        return b"\x83\x50" + _u32(len(body)) + packed
    return bytes(out)
