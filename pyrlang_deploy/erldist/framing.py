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
BIG_FRAME = 1 << 18  # frames this large are collected in one buffer of their exact size
_LEN = struct.Struct(">I")


class FrameReader:
    """Splits a byte stream into frame bodies.

    :meth:`feed` returns the complete frames so far: ``b""`` for each tick,
    otherwise the body starting with the ``'p'`` byte. A partial frame is kept
    until the rest arrives. A large frame gets one buffer of its size once
    enough of it has arrived to show it is real (nothing is allocated from a
    length field alone), then is filled in place rather than regrown.
    """

    __slots__ = ("_buf", "_need", "_big", "_fill")

    def __init__(self) -> None:
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
            frames, pos = _split(data)
            if pos < len(data):
                buf += memoryview(data)[pos:]
                self._after_partial()
            return frames
        buf += data
        if len(buf) < self._need:
            self._after_partial()
            return []
        frames, pos = _split(buf)
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


def _split(data: bytes | bytearray) -> tuple[list[bytes], int]:
    frames: list[bytes] = []
    pos, n = 0, len(data)
    unpack = _LEN.unpack_from
    view = memoryview(data) if type(data) is bytearray else None
    while n - pos >= 4:
        (length,) = unpack(data, pos)
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
