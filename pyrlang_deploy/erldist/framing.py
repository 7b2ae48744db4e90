"""Sans-IO framing of an established distribution connection.

Every frame is ``Length:32`` then ``Length`` bytes. A zero-length frame is a tick.
A data frame is ``'p'`` (pass-through, 112) + control term + optional message term,
both in external term format with the 131 version byte. We never negotiate
DIST_HDR_ATOM_CACHE or FRAGMENTS, so no other frame kinds can arrive.
"""

from __future__ import annotations

import os
import struct

from ..errors import DecodeError
from ..term.decoder import MAX_TERM_BYTES

PASS_THROUGH = 112
TICK_FRAME = b"\x00\x00\x00\x00"
BIG_FRAME = 1 << 18  # frames this large are collected in one buffer of their exact size
_LEN = struct.Struct(">I")
# The largest frame a peer may send us, and (the same budget) the most a
# compressed term in it may inflate to. Well above the agent's 1 MiB upload
# chunks and ordinary replies; ERLDEPLOY_MAX_FRAME (bytes) or
# LocalNode(max_frame=) change it.
DEFAULT_MAX_FRAME = MAX_TERM_BYTES


def max_frame_from_env() -> int:
    value = os.environ.get("ERLDEPLOY_MAX_FRAME", "")
    try:
        n = int(value) if value else DEFAULT_MAX_FRAME
    except ValueError:
        return DEFAULT_MAX_FRAME
    return n if n > 0 else DEFAULT_MAX_FRAME


class FrameTooLarge(DecodeError):
    """A frame header announced more than the frame limit."""

    def __init__(self, length: int, limit: int) -> None:
        super().__init__(f"a frame of {length} bytes, over the {limit} byte limit")
        self.length, self.limit = length, limit


class FrameReader:
    """Splits a byte stream into frame bodies.

    :meth:`feed` returns the complete frames so far: ``b""`` for each tick,
    otherwise the body starting with the ``'p'`` byte. A partial frame is kept
    until the rest arrives. A large frame gets one buffer of its size once
    enough of it has arrived to show it is real (nothing is allocated from a
    length field alone), then is filled in place rather than regrown. A
    header announcing more than ``max_frame`` bytes raises FrameTooLarge at
    once (the stream cannot be resynchronised after it: drop the connection).
    """

    __slots__ = ("_buf", "_need", "_big", "_fill", "max_frame")

    def __init__(self, max_frame: int = DEFAULT_MAX_FRAME) -> None:
        self.max_frame = max_frame
        self._buf = bytearray()
        self._need = 4  # bytes the buffer must hold before the next frame can be cut
        self._big: bytearray | None = None  # body of a large frame being filled
        self._fill = 0

    def feed(self, data: bytes) -> list[bytes]:
        if self._big is not None:
            data = self._fill_big(data)
            if self._fill < len(self._big):
                return []
            frames = [self._take_big()]
            if data:
                frames += self.feed(data)
            return frames
        buf = self._buf
        if not buf:
            # fast path: most reads hold whole frames, cut them straight from `data`
            frames, pos = _split(data, self.max_frame)
            if pos < len(data):
                buf += memoryview(data)[pos:]
                self._after_partial()
            return frames
        buf += data
        if len(buf) < self._need:
            self._after_partial()
            return []
        frames, pos = _split(buf, self.max_frame)
        if pos == len(buf):
            self._buf = bytearray()
        else:
            del buf[:pos]
        self._after_partial()
        return frames

    def _after_partial(self) -> None:
        buf = self._buf
        if len(buf) < 4:
            self._need = 4
            return
        length = _LEN.unpack_from(buf, 0)[0]
        if length > self.max_frame:
            raise FrameTooLarge(length, self.max_frame)
        self._need = 4 + length
        # switch to an exact-size buffer once a quarter of a big frame has arrived:
        # a claimed length alone never makes us allocate more than 4x what we got
        if length >= BIG_FRAME and len(buf) - 4 >= length // 4:
            big = bytearray(length)
            got = len(buf) - 4
            big[:got] = memoryview(buf)[4:]
            self._big, self._fill = big, got
            self._buf = bytearray()
            self._need = 4

    def _fill_big(self, data: bytes) -> bytes:
        big = self._big
        assert big is not None
        take = min(len(big) - self._fill, len(data))
        big[self._fill:self._fill + take] = memoryview(data)[:take]
        self._fill += take
        return data[take:] if self._fill == len(big) else b""

    def _take_big(self) -> bytes:
        big, self._big, self._fill = self._big, None, 0
        return bytes(big)

    @property
    def buffered(self) -> int:
        return len(self._buf) + self._fill


def _split(data: bytes | bytearray, limit: int) -> tuple[list[bytes], int]:
    frames: list[bytes] = []
    pos, n = 0, len(data)
    unpack = _LEN.unpack_from
    view = memoryview(data) if type(data) is bytearray else None
    while n - pos >= 4:
        (length,) = unpack(data, pos)
        if length > limit:
            if view is not None:
                view.release()
            raise FrameTooLarge(length, limit)
        end = pos + 4 + length
        if end > n:
            break
        if not length:
            frames.append(b"")
        elif view is not None:
            frames.append(bytes(view[pos + 4:end]))  # one copy, not slice + bytes()
        else:
            frames.append(data[pos + 4:end])
        pos = end
    if view is not None:
        view.release()  # the caller resizes the bytearray next
    return frames, pos


def frame_header(body_length: int) -> bytes:
    """The 4-byte length prefix for a frame whose body is ``body_length`` bytes."""
    return _LEN.pack(body_length)


def data_frame(control: bytes, message: bytes | None = None) -> bytes:
    """One complete pass-through frame from already encoded terms (each with 131)."""
    if message is None:
        return _LEN.pack(1 + len(control)) + b"p" + control
    return b"".join((_LEN.pack(1 + len(control) + len(message)), b"p", control, message))
