"""Sans-IO framing of an established distribution connection.

Every frame is ``Length:32`` then ``Length`` bytes. A zero-length frame is a tick.
A data frame is ``'p'`` (pass-through, 112) + control term + optional message term,
both in external term format with the 131 version byte. We never negotiate
DIST_HDR_ATOM_CACHE or FRAGMENTS, so no other frame kinds can arrive.
"""

from __future__ import annotations

import struct

PASS_THROUGH = 112
TICK_FRAME = b"\x00\x00\x00\x00"
_LEN = struct.Struct(">I")


class FrameReader:
    """Splits a byte stream into frame bodies.

    :meth:`feed` returns the complete frames so far: ``b""`` for each tick,
    otherwise the body starting with the ``'p'`` byte. A partial frame is kept
    until the rest arrives; nothing is allocated from a length field alone.
    """

    __slots__ = ("_buf", "_need")

    def __init__(self) -> None:
        self._buf = bytearray()
        self._need = 4  # bytes the buffer must hold before the next frame can be cut

    def feed(self, data: bytes) -> list[bytes]:
        buf = self._buf
        if not buf:
            # fast path: most reads hold whole frames, cut them straight from `data`
            frames, pos = _split(data)
            if pos < len(data):
                buf += memoryview(data)[pos:]
                self._need = _need(buf)
            return frames
        buf += data
        if len(buf) < self._need:
            return []  # still inside a large frame: O(1) per read
        frames, pos = _split(buf)
        if pos == len(buf):
            self._buf = bytearray()
        else:
            del buf[:pos]
        self._need = _need(self._buf)
        return frames

    @property
    def buffered(self) -> int:
        return len(self._buf)


def _split(data: bytes | bytearray) -> tuple[list[bytes], int]:
    frames: list[bytes] = []
    pos, n = 0, len(data)
    unpack = _LEN.unpack_from
    while n - pos >= 4:
        (length,) = unpack(data, pos)
        end = pos + 4 + length
        if end > n:
            break
        frames.append(bytes(data[pos + 4 : end]) if length else b"")
        pos = end
    return frames, pos


def _need(buf: bytearray) -> int:
    if len(buf) < 4:
        return 4
    return 4 + _LEN.unpack_from(buf, 0)[0]


def frame_header(body_length: int) -> bytes:
    """The 4-byte length prefix for a frame whose body is ``body_length`` bytes."""
    return _LEN.pack(body_length)


def data_frame(control: bytes, message: bytes | None = None) -> bytes:
    """One complete pass-through frame from already encoded terms (each with 131)."""
    if message is None:
        return _LEN.pack(1 + len(control)) + b"p" + control
    return b"".join((_LEN.pack(1 + len(control) + len(message)), b"p", control, message))
