"""The asyncio edge of one distribution connection.

Reading happens in exactly one place, :meth:`_DistProtocol.data_received`, which the
event loop calls in byte order; it feeds the sans-IO handshake, then the frame
reader, and dispatches each frame before the next is looked at. That is the
"one reader" of the design, without a task switch per message (round trips are
dominated by wake-ups). :meth:`Connection.wait_inline` feeds the same method.

Writing is serialized: every frame is written whole, in issue order, from the
event-loop thread. Frames issued while calls are in flight are queued and leave
together in one ``send`` at the end of the loop pass; a large frame streamed in
chunks (:meth:`Connection.write_large`) holds the queue back until it is complete,
so nothing lands inside it. Signals written from inside the dispatch (an
UNLINK_ID_ACK for its UNLINK_ID, a tick answer) join the same queue, so they
precede anything issued later.

Ticks: we write a tick when we wrote nothing for a quarter of the peer's
net_ticktime, answer every tick we receive, and declare the peer dead when
nothing at all arrived for a whole net_ticktime (checked every quarter, so the
detection takes between 1 and 1.25 net_ticktime, as in OTP).
"""

from __future__ import annotations

import asyncio
import os
import select
import socket
import time
from typing import TYPE_CHECKING, Any, Protocol

from ..errors import ConnectError, NodeDown
from ..term import encode
from . import control as ctl
from .debuglog import get_logger
from .flags import DFlag
from .framing import TICK_FRAME, FrameReader, data_frame
from .handshake import ClientHandshake, HandshakeResult, State
from .inbound import InboundFrames, Waiters

if TYPE_CHECKING:
    from .node import LocalNode

log = get_logger(__name__)

DEFAULT_TICK_TIME = 60.0  # OTP's default net_ticktime
_CHUNK = 1 << 20  # big payloads go to the socket in slices of this size
INLINE_SPIN = 100e-6  # how long wait_inline polls without sleeping before it blocks
_NO_PAYLOAD = object()


class Waiter(Protocol):
    """Something that must fail at once when the connection goes (an RPC, a receive)."""

    def connection_lost(self, conn: Connection, reason: str) -> None: ...


class Connection(InboundFrames, Waiters):
    """An established connection to one peer node. Made by ``LocalNode.connect``."""

    def __init__(self, node: LocalNode, protocol: _DistProtocol, result: HandshakeResult,
                 tick_time: float | None = None) -> None:
        self.node = node
        self.peer = result.peer_name
        self.peer_flags = result.peer_flags
        self.peer_creation = result.peer_creation
        self.flags = result.our_flags
        self.tick_time = tick_time or DEFAULT_TICK_TIME
        self.tick_time_known = tick_time is not None
        self.send_sender = bool(self.peer_flags & DFlag.SEND_SENDER)
        self.exit_payload = bool(self.peer_flags & DFlag.EXIT_PAYLOAD)
        self._protocol = protocol
        self._transport: asyncio.Transport = protocol.transport
        # the largest frame (and inflated compressed term) the peer may send
        self.max_frame: int = node.max_frame
        protocol.set_max_frame(self.max_frame)
        self._loop = asyncio.get_running_loop()
        self.closed = False
        self.close_reason = ""
        self._waiters: set[Waiter] = set()
        self._wq: list | None = None  # frames waiting for this loop pass's single send
        self._streaming = False  # write_large is in the middle of a frame
        self._large_lock = asyncio.Lock()
        self._inline: tuple | bool | None = None  # (dup socket, poller) for wait_inline
        # what bytes read from the socket go into: under TLS (carrier's TlsStream) the
        # decryption in front of the protocol
        self._feed = self._transport.get_extra_info("tls_feed") or protocol.data_received
        self._reads = 0
        self._writes = 0
        self._seen_reads = 0
        self._seen_writes = 0
        self._silent_ticks = 0
        self._tick_handle: asyncio.TimerHandle | None = None
        self._schedule_tick()

    def __repr__(self) -> str:
        state = f"closed: {self.close_reason}" if self.closed else f"tick {self.tick_time:g}s"
        return f"<Connection to {self.peer} ({state})>"

    @property
    def is_open(self) -> bool:
        return not self.closed

    # --- writing ----------------------------------------------------------------------

    def write(self, data: bytes | bytearray | memoryview) -> None:
        """Write one complete frame; NodeDown if the connection is gone.

        With several calls in flight, the frames written during one event-loop
        pass leave in one ``send`` (in order) instead of one system call each.
        """
        if self.closed:
            raise NodeDown.lost(self.peer, self.close_reason)
        q = self._wq
        if q is not None:
            q.append(data)
        elif self._waiters:  # calls in flight already: gather this pass's frames
            self._wq = [data]
            self._loop.call_soon(self._flush)
        else:
            self._transport.write(data)
        self._writes += 1

    async def write_large(self, pieces: list) -> None:
        """Write one frame given as buffers, streaming big ones in chunks.

        Handing 64 MiB to the transport at once makes it copy most of it into its
        own buffer; chunks with flow control send straight from the caller's
        memory. Frames written meanwhile wait in the queue, so nothing can land
        inside this frame.
        """
        async with self._large_lock:
            if self.closed:
                raise NodeDown.lost(self.peer, self.close_reason)
            self._flush()
            self._wq = []  # hold everything else back until the frame is complete
            self._streaming = True
            try:
                write, proto = self._transport.write, self._protocol
                for p in pieces:
                    if len(p) <= _CHUNK:
                        write(p)
                        continue
                    mv = memoryview(p)
                    for off in range(0, len(mv), _CHUNK):
                        if self.closed:
                            raise NodeDown.lost(self.peer, self.close_reason)
                        write(mv[off:off + _CHUNK])
                        if proto.paused:
                            await proto.drain()
                self._writes += 1
            finally:
                self._streaming = False
                self._flush()

    def _write_now(self, data: bytes) -> None:
        """Write behind anything queued (ticks, signals from inside the dispatch)."""
        if self._wq is not None:
            self._wq.append(data)
        else:
            self._transport.write(data)
        self._writes += 1

    def _flush(self) -> None:
        if self._streaming:
            return  # write_large flushes when its frame is complete
        q, self._wq = self._wq, None
        if q and not self.closed:
            self._transport.write(q[0] if len(q) == 1 else b"".join(q))

    def send_control(self, c: ctl.Control, payload: Any = _NO_PAYLOAD) -> None:
        """Encode and write one control message (and its payload term)."""
        msg = None if payload is _NO_PAYLOAD else encode(payload)
        if self.closed:
            raise NodeDown.lost(self.peer, self.close_reason)
        self._write_now(data_frame(encode(c.term()), msg))

    async def drain(self) -> None:
        """Wait while the transport's buffer is above its high-water mark."""
        await self._protocol.drain()

    def wait_inline(self, fut: asyncio.Future, budget: float) -> bool:
        """Wait up to ``budget`` seconds for ``fut`` by reading the socket right here.

        For a lone call this skips two event-loop passes (select, callback, task
        wake-up): the reply is read and dispatched in this frame, so the caller's
        ``await fut`` returns without suspending. Only ever used when nothing else
        is in flight on the node; any surprise (no data in time, EOF, error)
        returns False and the normal loop machinery takes over, seeing the same
        socket state.
        """
        inline = self._inline
        if inline is None:
            try:
                sock = self._transport.get_extra_info("socket")
                # a second descriptor for the same socket: reads through it need no
                # private transport attributes, and closing it leaves the connection
                dup = socket.socket(sock.family, sock.type, sock.proto, fileno=os.dup(sock.fileno()))
                dup.setblocking(False)
                poller = select.poll()
                poller.register(dup.fileno(), select.POLLIN)
            except (OSError, AttributeError, ValueError):
                self._inline = False
                return False
            inline = self._inline = (dup, poller)
        elif inline is False:
            return False
        dup, poller = inline
        now = time.monotonic()
        deadline = now + budget
        spin_until = now + INLINE_SPIN
        while not self.closed:
            # spin briefly first, as BEAM schedulers do: on an idle (virtual) CPU
            # the wake-up from a blocking poll costs more than the round trip
            while not poller.poll(0):
                now = time.monotonic()
                if now >= spin_until:
                    left = deadline - now
                    if left <= 0 or not poller.poll(left * 1000.0):
                        return False
                    break
            try:
                data = dup.recv(262144)
            except (BlockingIOError, InterruptedError):
                continue
            except OSError:
                return False  # the transport meets the same error on its next read
            if not data:
                return False  # EOF stays readable: the transport will see it
            self._feed(data)
            if fut.done():
                return True
        return False

    def _close_inline(self) -> None:
        inline, self._inline = self._inline, False
        if inline:
            inline[0].close()

    @property
    def write_paused(self) -> bool:
        return self._protocol.paused

    # --- ticks ------------------------------------------------------------------------

    def set_tick_time(self, seconds: float) -> None:
        """Adopt the peer's net_ticktime (learned by RPC or given by the caller)."""
        self.tick_time = float(seconds)
        self.tick_time_known = True
        self._silent_ticks = 0
        self._schedule_tick()

    def _schedule_tick(self) -> None:
        if self._tick_handle is not None:
            self._tick_handle.cancel()
        if not self.closed:
            self._tick_handle = self._loop.call_later(self.tick_time / 4, self._on_tick_timer)

    def _on_tick_timer(self) -> None:
        self._tick_handle = None
        if self.closed:
            return
        if self._reads == self._seen_reads:
            self._silent_ticks += 1
            # silent for >= 4 quarters: a whole net_ticktime without a byte
            if self._silent_ticks > 4:
                self._lose(f"no data for {self.tick_time:g}s (net_ticktime)")
                self._transport.abort()
                return
        else:
            self._silent_ticks = 0
            self._seen_reads = self._reads
        if self._writes == self._seen_writes:
            self._write_now(TICK_FRAME)
        self._seen_writes = self._writes
        self._schedule_tick()

    # --- closing ----------------------------------------------------------------------

    def _lose(self, reason: str) -> None:
        """Mark the connection dead and fail everything waiting on it, at once."""
        if self.closed:
            return
        self.closed = True
        self.close_reason = reason
        self._close_inline()
        if self._tick_handle is not None:
            self._tick_handle.cancel()
            self._tick_handle = None
        self._fail_waiters(reason)
        self._protocol.fail_drain(NodeDown.lost(self.peer, reason))
        self.node.on_connection_lost(self, reason)

    def close(self, reason: str = "disconnected") -> None:
        """Close the socket and fail every waiter with NodeDown."""
        self._lose(reason)
        self._transport.close()

    def abort(self, reason: str) -> None:
        """Drop a peer that broke the protocol: nothing more is read or written."""
        self._lose(reason)
        self._transport.abort()


class _DistProtocol(asyncio.Protocol):
    """Bytes in and out of one socket: handshake first, then frames."""

    def __init__(self, handshake: ClientHandshake, loop: asyncio.AbstractEventLoop) -> None:
        self.handshake = handshake
        self.handshake_done: asyncio.Future[HandshakeResult] = loop.create_future()
        self.transport: asyncio.Transport | None = None
        self.conn: Connection | None = None
        self.paused = False
        self._drain: asyncio.Future | None = None
        self._loop = loop
        self._reader = FrameReader()
        self._early: list[bytes] = []  # frames that arrived between the ack and attach()
        self.lost_exc: BaseException | None = None  # why the socket closed (a TLS alert, say)

    # handshake ---------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        transport.write(self.handshake.initiate())  # type: ignore[attr-defined]

    def set_max_frame(self, limit: int) -> None:
        self._reader.max_frame = limit

    def data_received(self, data: bytes) -> None:
        conn = self.conn
        if conn is not None:
            if conn.closed:
                return  # aborted: whatever else arrives is not read
            frames = conn.feed(self._reader, data)
            if frames:
                conn.on_frames(frames)
            return
        hs = self.handshake
        if hs.state is State.CONNECTED:
            self._early.append(data)
            return
        try:
            out = hs.receive_data(data)
        except ConnectError as exc:
            self._fail_handshake(exc)
            return
        if out:
            self.transport.write(out)
        if hs.error is not None:
            self._fail_handshake(hs.error)
        elif hs.state is State.CONNECTED and not self.handshake_done.done():
            self.handshake_done.set_result(hs.result)

    def _fail_handshake(self, exc: Exception) -> None:
        if not self.handshake_done.done():
            self.handshake_done.set_exception(exc)
        self.transport.close()

    def attach(self, conn: Connection) -> None:
        """Switch from handshake to frames; replay what arrived in between."""
        self.conn = conn
        pending = [self.handshake.leftover, *self._early]
        self._early = []
        for data in pending:
            if data:
                self.data_received(data)

    # closing ----------------------------------------------------------------------------

    def eof_received(self) -> bool:
        return False  # half-closed distribution sockets are useless: close ours too

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost_exc = exc
        if self.conn is not None:
            reason = "connection closed" if exc is None else f"connection error: {exc}"
            self.conn._lose(reason)
        elif not self.handshake_done.done():
            self.handshake_done.set_exception(self.handshake.connection_closed())
        self.fail_drain(None)

    # flow control -----------------------------------------------------------------------

    def pause_writing(self) -> None:
        self.paused = True

    def resume_writing(self) -> None:
        self.paused = False
        if self._drain is not None and not self._drain.done():
            self._drain.set_result(None)
        self._drain = None

    async def drain(self) -> None:
        if not self.paused:
            return
        if self._drain is None:
            self._drain = self._loop.create_future()
        await asyncio.shield(self._drain)

    def fail_drain(self, exc: Exception | None) -> None:
        fut, self._drain = self._drain, None
        self.paused = False
        if fut is not None and not fut.done():
            if exc is None:
                fut.set_result(None)
            else:
                fut.set_exception(exc)
