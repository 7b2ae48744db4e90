"""Hand-made encodings for the few terms on the RPC hot path.

The general codec handles any term; these helpers build the bytes of our own
pids, references and atoms directly, and find the destination pid of a
SEND/SEND_SENDER control tuple without decoding it. Both fall back to the
codec whenever the bytes are not in the exact shape expected.
"""

from __future__ import annotations

import struct

from ..term import encode_body
from ..term.tags import NEW_PID as NEW_PID_EXT
from ..term.tags import NEWER_REFERENCE as NEWER_REFERENCE_EXT  # noqa: F401 (named for readers)
from ..term.tags import SMALL_ATOM_UTF8 as SMALL_ATOM_UTF8_EXT
from ..term.types import Atom, Pid, Reference

_III = struct.Struct(">III")
_H = struct.Struct(">H")
_ATOMS: dict[str, bytes] = {}


def atom(name: str) -> bytes:
    """The encoding of atom ``name`` (cached)."""
    b = _ATOMS.get(name)
    if b is None:
        out = bytearray()
        encode_body(Atom(name), out)
        b = bytes(out)
        if len(_ATOMS) > 4096:
            _ATOMS.clear()
        _ATOMS[name] = b
    return b


def pid(p: Pid) -> bytes:
    return b"X" + atom(p.node) + _III.pack(p.id, p.serial, p.creation)


def ref(r: Reference) -> bytes:
    ids = r.ids
    return (b"Z" + _H.pack(len(ids)) + atom(r.node)
            + struct.pack(f">I{len(ids)}I", r.creation, *ids))


def _skip_pid(data: bytes, pos: int) -> int:
    """End offset of a NEW_PID_EXT with a SMALL_ATOM_UTF8 node at ``pos``; -1 if not that shape."""
    if data[pos] != NEW_PID_EXT or data[pos + 1] != SMALL_ATOM_UTF8_EXT:
        return -1
    return pos + 2 + 1 + data[pos + 2] + 12


# b'p', 131, SMALL_TUPLE arity 3, SMALL_INTEGER op
_SEND_SENDER_HEAD = b"p\x83h\x03a\x16"
_SEND_HEAD = b"p\x83h\x03a\x02"


def send_target(frame: bytes) -> tuple[bytes, int] | None:
    """For a SEND_SENDER or SEND frame: (encoded destination pid, offset of the message).

    None when the frame is another op or not in the common encoding.
    """
    head = frame[:6]
    try:
        if head == _SEND_SENDER_HEAD:
            start = _skip_pid(frame, 6)
        elif head == _SEND_HEAD:
            # the unused second element is the empty atom
            start = 8 if frame[6:8] == b"w\x00" else -1
        else:
            return None
        if start < 0:
            return None
        end = _skip_pid(frame, start)
        if end < 0 or end > len(frame):
            return None
        return frame[start:end], end
    except IndexError:
        return None
