"""Decoder for the External Term Format (the bytes of term_to_binary/1).

One iterative loop with an explicit stack, so nesting depth is bounded by memory,
never by the Python stack. Common tags are handled inline (no call per element);
rare ones go to ``_rare``. Length fields are never trusted for allocation: every
element needs at least one byte, so a container claiming more elements than
there are bytes left is rejected before anything is built.

Any malformed input raises exactly one ``DecodeError``.
"""

from __future__ import annotations

import gc
import struct
import zlib

from ..errors import DecodeError
from .lazy_re import LazyMatch
from .tags import VERSION  # noqa: F401 (decoder.VERSION: the one table of tag bytes)
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

# Building a big or deep structure (a large input; nesting this deep only comes
# from odd or hostile input) makes the cyclic GC rescan the growing heap over
# and over, 15% slower for a 3 MB term and 3-5x for deep nesting. Nothing built
# here can form a cycle, so the GC is paused for the rest of such a call.
_BIG = 256 * 1024
_DEEP = 10_000


def _pause_gc() -> bool:
    if gc.isenabled():
        gc.disable()
        return True
    return False


_u16 = struct.Struct(">H").unpack_from
_u32 = struct.Struct(">I").unpack_from
_i32 = struct.Struct(">i").unpack_from
_f64 = struct.Struct(">d").unpack_from

# What io_lib:printable_unicode_list/1 accepts (checked against OTP in the tests).
_PRINTABLE_LATIN1 = LazyMatch(rb"[\x08-\x0d\x1b\x20-\x7e\xa0-\xff]+", "fullmatch")
_PRINTABLE_UNICODE = LazyMatch(
    "[\x08-\x0d\x1b\x20-\x7e\xa0-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]+", "fullmatch"
)
_OLD_FLOAT = LazyMatch(rb" *[-+]?[0-9]+(\.[0-9]*)?([eE][-+]?[0-9]+)?", "fullmatch")

# Atom caches: raw bytes -> Atom (or bool), one per encoding since the same bytes
# mean different atoms in latin-1 and UTF-8. Bounded so a peer sending endless
# distinct atoms cannot grow them without limit.
_ATOM_CACHE_MAX = 65536
_ATOMS_UTF8: dict[bytes, Any] = {}
_ATOMS_LATIN1: dict[bytes, Any] = {}


def _reset_atom_cache(cache: dict[bytes, Any]) -> None:
    cache.clear()
    cache[b"true"] = True
    cache[b"false"] = False


_reset_atom_cache(_ATOMS_UTF8)
_reset_atom_cache(_ATOMS_LATIN1)

# The most a compressed term (tag 80) may inflate to, whatever its ratio. A
# distribution connection passes its frame limit instead (the two are one budget:
# what a peer can make us hold). Override per call with ``decode(max_inflated=)``.
MAX_TERM_BYTES = 64 << 20

# Largest expansion zlib can achieve (deflate tops out near 1032:1); a declared
# size beyond that, relative to the compressed bytes present, is a lie.
_ZLIB_MAX_RATIO = 1032


def _new_atom(raw: bytes, utf8: bool) -> Any:
    """Build (and cache) the atom for raw bytes that missed the cache."""
    try:
        name = raw.decode("utf-8") if utf8 else raw.decode("latin-1")
    except UnicodeDecodeError:
        raise DecodeError(f"atom is not valid UTF-8: {raw[:40]!r}") from None
    if len(name) > 255:
        raise DecodeError(f"atom longer than 255 characters ({len(name)})")
    cache = _ATOMS_UTF8 if utf8 else _ATOMS_LATIN1
    if len(cache) >= _ATOM_CACHE_MAX:
        _reset_atom_cache(cache)
    atom = cache[bytes(raw)] = Atom(name)
    return atom


def _atom(data: bytes, pos: int) -> tuple[Any, int]:
    """Decode one atom (any atom tag) at pos; returns (Atom or bool, next pos)."""
    tag = data[pos]
    if tag == 119 or tag == 115:  # SMALL_ATOM_UTF8, SMALL_ATOM
        n = data[pos + 1]
        start = pos + 2
    elif tag == 118 or tag == 100:  # ATOM_UTF8, ATOM
        n = _u16(data, pos + 1)[0]
        start = pos + 3
    elif tag == 82:
        raise DecodeError("ATOM_CACHE_REF in a term, but the atom cache was never negotiated")
    else:
        raise DecodeError(f"expected an atom at byte {pos}, found tag {tag}")
    end = start + n
    if end > len(data):
        raise DecodeError("truncated atom")
    raw = data[start:end]
    utf8 = tag == 119 or tag == 118
    cache = _ATOMS_UTF8 if utf8 else _ATOMS_LATIN1
    atom = cache.get(raw)
    if atom is None:
        atom = _new_atom(raw, utf8)
    return atom, end


def _node(data: bytes, pos: int) -> tuple[Atom, int]:
    node, pos = _atom(data, pos)
    if type(node) is bool:  # a node called 'true' is silly but valid
        node = Atom("true" if node else "false")
    return node, pos


def _small_int(data: bytes, pos: int, what: str) -> tuple[int, int]:
    tag = data[pos]
    if tag == 97:
        return data[pos + 1], pos + 2
    if tag == 98:
        return _i32(data, pos + 1)[0], pos + 5
    raise DecodeError(f"{what} is not an integer (tag {tag} at byte {pos})")


def _rare(tag: int, data: bytes, pos: int) -> tuple[Any, int]:
    """Tags that never contain nested containers and are rare in bulk data.

    ``pos`` points just past the tag byte.
    """
    if tag == 88:  # NEW_PID: node, id u32, serial u32, creation u32
        node, pos = _node(data, pos)
        pid_id, serial, creation = struct.unpack_from(">III", data, pos)
        return Pid(node, pid_id, serial, creation), pos + 12
    if tag == 90 or tag == 114:  # NEWER_REFERENCE / NEW_REFERENCE
        n = _u16(data, pos)[0]
        if n == 0 or n > 5:  # OTP never uses more than 5 words
            raise DecodeError(f"reference with {n} id words")
        node, pos = _node(data, pos + 2)
        if tag == 90:
            creation = _u32(data, pos)[0]
            pos += 4
        else:
            creation = data[pos]
            pos += 1
        ids = struct.unpack_from(f">{n}I", data, pos)
        return Reference(node, creation, ids), pos + 4 * n
    if tag == 110 or tag == 111:  # SMALL_BIG / LARGE_BIG
        if tag == 110:
            n = data[pos]
            pos += 1
        else:
            n = _u32(data, pos)[0]
            pos += 4
        sign = data[pos]
        end = pos + 1 + n
        if end > len(data):
            raise DecodeError(f"big integer claims {n} bytes, only {len(data) - pos - 1} left")
        value = int.from_bytes(data[pos + 1 : end], "little")
        if sign > 1:
            raise DecodeError(f"big integer with sign byte {sign}")
        return (-value if sign else value), end
    if tag == 118 or tag == 100 or tag == 115:
        return _atom(data, pos - 1)
    if tag == 113:  # EXPORT: module, function, arity
        module, pos = _node(data, pos)
        function, pos = _node(data, pos)
        if data[pos] != 97:
            raise DecodeError("fun arity is not a small integer")
        return ExportFun(module, function, data[pos + 1]), pos + 2
    if tag == 112:  # NEW_FUN: kept opaque, size covers everything after the tag
        size = _u32(data, pos)[0]
        end = pos + size
        if size < 4 + 1 + 16 + 4 + 4 or end > len(data):
            raise DecodeError(f"fun claims {size} bytes, {len(data) - pos} left")
        arity = data[pos + 4]
        module, mod_end = _node(data, pos + 29)
        if mod_end > end:
            raise DecodeError("fun module runs past the fun")
        return LocalFun(module, arity, data[pos - 1 : end]), end
    if tag == 77:  # BIT_BINARY: len u32, bits u8, data
        n = _u32(data, pos)[0]
        bits = data[pos + 4]
        end = pos + 5 + n
        if end > len(data):
            raise DecodeError(f"bitstring claims {n} bytes, only {len(data) - pos - 5} left")
        raw = data[pos + 5 : end]
        if n == 0:
            if bits:
                raise DecodeError("empty bitstring with a bit count")
            return b"", end
        if not 1 <= bits <= 8:
            raise DecodeError(f"bitstring with {bits} bits in its last byte")
        if bits == 8:
            return raw, end
        # Erlang ignores the unused low bits; clear them so equal values compare equal.
        last = raw[-1] & (0xFF << (8 - bits)) & 0xFF
        return BitString(raw[:-1] + bytes((last,)), bits), end
    if tag == 99:  # FLOAT_EXT: 31 bytes of "%.20e" text, NUL padded
        end = pos + 31
        if end > len(data):
            raise DecodeError("truncated float")
        text = data[pos:end].split(b"\0", 1)[0]
        if not _OLD_FLOAT(text):
            raise DecodeError(f"bad float text {text!r}")
        value = float(text)
        if value - value:
            raise DecodeError("float is not finite")
        return value, end
    if tag == 103:  # PID_EXT: node, id u32, serial u32, creation u8
        node, pos = _node(data, pos)
        pid_id, serial = struct.unpack_from(">II", data, pos)
        return Pid(node, pid_id, serial, data[pos + 8]), pos + 9
    if tag == 101:  # REFERENCE_EXT: node, id u32, creation u8
        node, pos = _node(data, pos)
        ref_id = _u32(data, pos)[0]
        return Reference(node, data[pos + 4], (ref_id,)), pos + 5
    if tag == 102:  # PORT_EXT: node, id u32, creation u8
        node, pos = _node(data, pos)
        port_id = _u32(data, pos)[0]
        return Port(node, port_id, data[pos + 4]), pos + 5
    if tag == 89:  # NEW_PORT: node, id u32, creation u32
        node, pos = _node(data, pos)
        port_id, creation = struct.unpack_from(">II", data, pos)
        return Port(node, port_id, creation), pos + 8
    if tag == 120:  # V4_PORT: node, id u64, creation u32
        node, pos = _node(data, pos)
        port_id, creation = struct.unpack_from(">QI", data, pos)
        return Port(node, port_id, creation), pos + 12
    if tag == 121:
        raise DecodeError("LOCAL_EXT term, but this node never advertises DFLAG_LOCAL_EXT")
    if tag == 82:
        raise DecodeError("ATOM_CACHE_REF in a term, but the atom cache was never negotiated")
    if tag == 80:
        raise DecodeError("compressed term nested inside a term")
    raise DecodeError(f"unknown term tag {tag} at byte {pos - 1}")


def _charlist(items: list) -> Any:
    """A proper list of integers prints as "..." in Erlang exactly when
    io_lib:printable_unicode_list/1 says so; such a list decodes as str."""
    try:
        text = "".join(map(chr, items))
    except (TypeError, ValueError, OverflowError):
        return items
    # bools (chr(True) == "\x01") land on non-printable code points: rejected here.
    # str.isprintable() accepts a subset of Erlang's printable set: a fast yes.
    return text if text.isprintable() or _PRINTABLE_UNICODE(text) else items


def _close_list(items: list) -> Any:
    """Finish a LIST_EXT whose last collected item is its tail."""
    tail = items.pop()
    tail_type = type(tail)
    # A list tail is [] or a STRING_EXT (list tails are merged while decoding).
    if tail_type is list:
        items += tail
    elif tail_type is str:
        items += map(ord, tail)
    elif not items:  # LIST_EXT with zero elements is just its tail (as in OTP)
        return tail
    else:
        return ImproperList(tuple(items), tail)
    if items and type(items[0]) is int:
        return _charlist(items)
    return items


def _close_map(items: list) -> dict:
    keys = items[0::2]
    values = items[1::2]
    try:
        result = dict(zip(keys, values))
    except TypeError:  # an unhashable key: wrap just those
        keys = [_hashable_key(k) for k in keys]
        result = dict(zip(keys, values))
    if len(result) != len(keys):
        # Python merged keys Erlang keeps apart (1 and 1.0, a and "a"): wrap them all.
        result = dict(zip(map(MapKey, keys), values))
        if len(result) != len(keys):
            raise DecodeError("map with a duplicate key")
    return result


def _hashable_key(key: Any) -> Any:
    try:
        hash(key)
    except TypeError:
        return MapKey(key)
    return key


def _decode_body(data: bytes, pos: int) -> tuple[Any, int]:
    """Decode one term (no version byte) starting at pos."""
    size = len(data)
    atoms_utf8 = _ATOMS_UTF8
    atoms_latin1 = _ATOMS_LATIN1
    u32 = _u32
    # The innermost open container: its elements so far, how many it still
    # needs, and its kind (0 the top level, 1 tuple, 2 list whose last element
    # is the tail, 3 map as keys and values in turn). Enclosing ones wait on
    # the stack. Leaves are appended in place; only containers touch the stack.
    stack: list = []
    items: list = []
    left = 1
    kind = 0
    paused = size - pos > _BIG and _pause_gc()
    try:
        while True:
            while left:
                tag = data[pos]
                # Two-level dispatch: splitting the tags in halves keeps every
                # common tag within a few comparisons.
                if tag <= 105:
                    if tag == 104:  # SMALL_TUPLE
                        n = data[pos + 1]
                        pos += 2
                        if n:  # at most 255: no size check needed before collecting
                            # Most tuples hold only leaves (atoms, numbers, strings,
                            # binaries): read those here, without a stack frame; at
                            # the first other element, open the frame and carry on.
                            elems = []
                            while n:
                                t = data[pos]
                                if t == 100:
                                    end = pos + 3 + (data[pos + 1] << 8 | data[pos + 2])
                                    val = atoms_latin1.get(data[pos + 3 : end])
                                    if val is None:
                                        break
                                elif t == 119:
                                    end = pos + 2 + data[pos + 1]
                                    val = atoms_utf8.get(data[pos + 2 : end])
                                    if val is None:
                                        break
                                elif t == 107:
                                    end = pos + 3 + (data[pos + 1] << 8 | data[pos + 2])
                                    val = data[pos + 3 : end].decode("latin-1")
                                    if not val.isprintable() or not val:
                                        break
                                elif t == 97:
                                    val = data[pos + 1]
                                    end = pos + 2
                                elif t == 98:
                                    val = _i32(data, pos + 1)[0]
                                    end = pos + 5
                                elif t == 109:
                                    end = pos + 5 + u32(data, pos + 1)[0]
                                    val = data[pos + 5 : end]
                                elif t == 70:
                                    val = _f64(data, pos + 1)[0]
                                    if val - val:
                                        break
                                    end = pos + 9
                                else:
                                    break
                                elems.append(val)
                                pos = end
                                n -= 1
                            if not n:
                                items.append(tuple(elems))
                                left -= 1
                                continue
                            stack.append((items, left, kind))
                            if len(stack) == _DEEP and not paused:
                                paused = _pause_gc()
                            items = elems
                            left = n
                            kind = 1
                            continue
                        items.append(())
                    elif tag == 100:  # ATOM (latin-1; what OTP 25's term_to_binary writes)
                        end = pos + 3 + (data[pos + 1] << 8 | data[pos + 2])
                        raw = data[pos + 3 : end]
                        val = atoms_latin1.get(raw)
                        if val is None:
                            if end > size:
                                raise DecodeError("truncated atom")
                            val = _new_atom(raw, False)
                        items.append(val)
                        pos = end
                    elif tag == 97:  # SMALL_INTEGER
                        items.append(data[pos + 1])
                        pos += 2
                    elif tag == 98:  # INTEGER
                        items.append(_i32(data, pos + 1)[0])
                        pos += 5
                    elif tag == 70:  # NEW_FLOAT
                        val = _f64(data, pos + 1)[0]
                        if val - val:  # inf or nan: Erlang has neither
                            raise DecodeError("float is not finite")
                        items.append(val)
                        pos += 9
                    elif tag == 105:  # LARGE_TUPLE
                        n = u32(data, pos + 1)[0]
                        pos += 5
                        if n:
                            if n > size - pos:
                                raise DecodeError(f"tuple claims {n} elements, {size - pos} bytes left")
                            stack.append((items, left, kind))
                            if len(stack) == _DEEP and not paused:
                                paused = _pause_gc()
                            items = []
                            left = n
                            kind = 1
                            continue
                        items.append(())
                    else:
                        val, pos = _rare(tag, data, pos + 1)
                        items.append(val)
                elif tag == 119:  # SMALL_ATOM_UTF8
                    end = pos + 2 + data[pos + 1]
                    raw = data[pos + 2 : end]
                    val = atoms_utf8.get(raw)
                    if val is None:
                        if end > size:
                            raise DecodeError("truncated atom")
                        val = _new_atom(raw, True)
                    items.append(val)
                    pos = end
                elif tag == 107:  # STRING: bytes that are a list of small integers
                    end = pos + 3 + (data[pos + 1] << 8 | data[pos + 2])
                    raw = data[pos + 3 : end]
                    val = raw.decode("latin-1")
                    # str.isprintable() accepts a subset of what Erlang calls printable:
                    # a cheap yes for the common case, the exact test otherwise.
                    if not val.isprintable() and not _PRINTABLE_LATIN1(raw) or not raw:
                        val = list(raw)
                    items.append(val)
                    pos = end
                elif tag == 109:  # BINARY
                    end = pos + 5 + u32(data, pos + 1)[0]
                    items.append(data[pos + 5 : end])
                    pos = end
                elif tag == 106:  # NIL
                    items.append([])
                    pos += 1
                elif tag == 108:  # LIST: n elements then the tail
                    n = u32(data, pos + 1)[0]
                    pos += 5
                    if n >= size - pos:
                        raise DecodeError(f"list claims {n} elements, {size - pos} bytes left")
                    if kind == 2 and left == 1:
                        # A list as the tail of a list ([1|[2|T]], never from OTP but
                        # legal): keep filling the same one, so chains stay linear.
                        left = n + 1
                        continue
                    stack.append((items, left, kind))
                    if len(stack) == _DEEP and not paused:
                        paused = _pause_gc()
                    items = []
                    left = n + 1
                    kind = 2
                    continue
                elif tag == 116:  # MAP
                    n = u32(data, pos + 1)[0]
                    pos += 5
                    if n:
                        if 2 * n > size - pos:
                            raise DecodeError(f"map claims {n} pairs, {size - pos} bytes left")
                        stack.append((items, left, kind))
                        if len(stack) == _DEEP and not paused:
                            paused = _pause_gc()
                        items = []
                        left = 2 * n
                        kind = 3
                        continue
                    items.append({})
                else:
                    val, pos = _rare(tag, data, pos + 1)
                    items.append(val)
                left -= 1

            # The innermost container is complete: build it, hand it to its parent.
            if kind == 1:
                val = tuple(items)
            elif kind == 2:
                val = _close_list(items)
            elif kind == 3:
                val = _close_map(items)
            else:
                if pos > size:
                    raise DecodeError("truncated term")
                return items[0], pos
            items, left, kind = stack.pop()
            items.append(val)
            left -= 1
    finally:
        if paused:
            gc.enable()


def _decompress(data: bytes, pos: int, limit: int) -> tuple[bytes, int]:
    """Inflate a COMPRESSED term body at pos (just past tag 80).

    Returns the uncompressed body and the offset just past the zlib stream.
    """
    declared = _u32(data, pos)[0]
    start = pos + 4
    present = len(data) - start
    if declared > limit:
        raise DecodeError(f"compressed term claims {declared} bytes, over the {limit} byte limit")
    if declared > _ZLIB_MAX_RATIO * present + 64:
        raise DecodeError(f"compressed term claims {declared} bytes from {present} compressed bytes")
    inflater = zlib.decompressobj()
    try:
        body = inflater.decompress(memoryview(data)[start:], declared)
        if not inflater.eof and len(body) == declared:
            # The stream may still hold its end marker; it must produce nothing more.
            if inflater.decompress(inflater.unconsumed_tail, 1):
                raise DecodeError(f"compressed term is longer than its declared {declared} bytes")
    except zlib.error as exc:
        raise DecodeError(f"corrupt compressed term: {exc}") from None
    if not inflater.eof:
        raise DecodeError("truncated compressed term")
    if len(body) != declared:
        raise DecodeError(f"compressed term is {len(body)} bytes, declared {declared}")
    return body, len(data) - len(inflater.unused_data)


def decode(data: bytes | bytearray | memoryview, offset: int = 0,
           max_inflated: int = MAX_TERM_BYTES) -> tuple[Any, int]:
    """Decode the term at ``offset`` (which must hold the 131 version byte).

    Returns the term and the offset just past it, so terms stored back to back
    (a distribution frame's control message and payload) decode in turn. A
    compressed term may inflate to at most ``max_inflated`` bytes.
    """
    if type(data) is not bytes:
        data = bytes(data)  # binaries in the result must be immutable bytes
    if offset < 0:
        raise DecodeError(f"negative offset {offset}")
    try:
        version = data[offset]
        if version != VERSION:
            raise DecodeError(f"not an external term: version byte {version} at {offset}, expected 131")
        if data[offset + 1] == 80:
            body, end = _decompress(data, offset + 2, max_inflated)
            term, used = _decode_body(body, 0)
            if used != len(body):
                raise DecodeError(f"compressed term has {len(body) - used} trailing bytes")
            return term, end
        return _decode_body(data, offset + 1)
    except (IndexError, struct.error):
        raise DecodeError(f"truncated term ({len(data) - offset} bytes)") from None
    except (ValueError, OverflowError) as exc:  # belt and braces: still one error type
        raise DecodeError(f"malformed term: {exc}") from None
