"""What a connection does with each frame it reads, whichever driver reads it.

Two drivers read distribution sockets: the asyncio one (connection.py, for
everything) and the blocking one (blocking.py, for the CLI's one-node commands,
which cannot afford asyncio's import). Both hand complete frames to
:meth:`InboundFrames.on_frames`, so the rules live here once: ticks are
answered, a reply to one of our calls is found by its encoded pid without a
control decode, and the first frame we cannot read ends the connection (after
one, nothing the peer sends can be trusted).

A class using it provides ``node`` (its ``table`` and ``on_control``),
``peer``, ``max_frame``, ``closed``, ``_reads``, ``_write_now(bytes)`` and
``abort(reason)``. :class:`Waiters` is the other half both drivers share: what
must fail at once when the connection goes (``_waiters``, ``closed``,
``close_reason``).
"""

from __future__ import annotations

from ..errors import DecodeError
from ..term import decode
from . import control as ctl
from .debuglog import get_logger
from .framing import TICK_FRAME, FrameTooLarge
from .wire import send_target

TYPE_CHECKING = False  # typing is not imported at run time: see cli/fastpath.py
if TYPE_CHECKING:
    from typing import Any

log = get_logger(__name__)


class InboundFrames:
    __slots__ = ()

    def feed(self, reader: Any, data: bytes) -> list[bytes]:
        """The complete frames in what the socket gave (a framing.FrameReader); a frame over
        the limit aborts the connection, and bytes that complete no frame still count as a
        read (the tick check's sign of life)."""
        try:
            frames = reader.feed(data)
        except FrameTooLarge as exc:
            self.abort(f"{self.peer} sent {exc}")
            return []
        if not frames:
            self._reads += 1
        return frames

    def on_frames(self, frames: list[bytes]) -> None:
        self._reads += 1
        for frame in frames:
            if not frame:
                # answer ticks: a peer that only hears from us on ticks still sees us alive
                self._write_now(TICK_FRAME)
                continue
            try:
                self._on_frame(frame)
            except Exception as exc:
                log.debug("frame handling error from %s", self.peer, exc_info=True)
                self.abort(f"{self.peer} sent a frame we cannot read: {short_text(exc)}")
                return
            if self.closed:
                return

    def _on_frame(self, frame: bytes) -> None:
        node = self.node
        hit = send_target(frame)
        if hit is not None:
            # a reply or io request to one of our RPC pids: no control decode needed
            proc = node.table.calls.get(hit[0])
            if proc is not None:
                proc.deliver_frame(frame, hit[1])
                return
        if frame[0] != 112:
            raise DecodeError(f"frame kind {frame[0]} is not pass-through (112)")
        limit = self.max_frame
        term, off = decode(frame, 1, limit)
        op = term[0] if type(term) is tuple and term else None
        if op == 2 or op == 22:  # SEND / SEND_SENDER: the hot path of every reply
            proc = node.table.lookup(term[2])
            if proc is not None:
                proc.deliver(decode(frame, off, limit)[0])
            else:
                log.debug("%s sent to a pid we do not have: %s", self.peer, term[2])
            return
        c = ctl.parse(term)
        if c is None:
            return
        payload = decode(frame, off, limit)[0] if c.PAYLOAD and off < len(frame) else None
        node.on_control(self, c, payload)


class Waiters:
    """The calls and receives waiting on a connection: each fails at once when it goes."""

    __slots__ = ()

    def add_waiter(self, waiter: Any) -> None:
        if self.closed:
            waiter.connection_lost(self, self.close_reason)
        else:
            self._waiters.add(waiter)

    def remove_waiter(self, waiter: Any) -> None:
        self._waiters.discard(waiter)

    def _fail_waiters(self, reason: str) -> None:
        waiters, self._waiters = self._waiters, set()
        for w in waiters:
            try:
                w.connection_lost(self, reason)
            except Exception:
                log.exception("waiter failed on connection loss")


def short_text(exc: BaseException, limit: int = 160) -> str:
    """An error's text for a one-line message: bounded (it may quote peer bytes)."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."
