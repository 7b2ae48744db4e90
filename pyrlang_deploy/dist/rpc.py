"""Remote calls through the ``rex`` server every node runs.

We send ``{'$gen_call', {Pid, Ref}, {call, M, F, A, GroupLeader}}`` to ``rex`` and
wait for ``{Ref, Reply}``. Each call gets its own pid, which is both the reply
address and the group leader of the remote call, so many calls can be in flight
on one connection and each call's ``io:format`` output reaches that call's
``io`` callback. Exceptions come back as ``{badrpc, {'EXIT', Reason}}``.
"""

from __future__ import annotations

import asyncio
import struct
from typing import TYPE_CHECKING, Any, Callable

from ..errors import NodeDown, RpcError, RpcTimeout
from ..term.encode import encode_body
from ..term.types import Atom, Pid, Reference
from . import wire
from .io_server import IoServer, is_io_request
from .process import LocalProcess

if TYPE_CHECKING:
    from .connection import Connection
    from .node import LocalNode

GEN_CALL = Atom("$gen_call")
CALL = Atom("call")
REX = Atom("rex")
EMPTY = Atom("")
BADRPC = Atom("badrpc")

BIG_BINARY = 1 << 16  # args at least this large are written from the caller's buffer, not copied
MAX_REASON_CHARS = 2000

_u32 = struct.Struct(">I")


class RpcCall(LocalProcess):
    """One call in flight: its reply address, group leader and waiter."""

    __slots__ = ("ref", "future", "io", "peer", "mfa", "wire_pid", "timeout")

    def __init__(self, node: "LocalNode", pid: Pid, ref: Reference, future: asyncio.Future,
                 peer: str, mfa: str, io: Callable[[str], Any] | None) -> None:
        # slots set directly: this runs once per call on the hot path
        self.node = node
        self.pid = pid
        self.name = None
        self.monitored_by = None
        self.links = None
        self.monitoring = False
        self.closed = False
        self.ref = ref
        self.future = future
        self.peer = peer
        self.mfa = mfa
        self.io = io
        self.wire_pid = b""
        self.timeout = 0.0

    def deliver(self, msg: Any) -> None:
        if type(msg) is tuple and len(msg) == 2 and msg[0] == self.ref:
            if not self.future.done():
                self.future.set_result(msg[1])
        elif is_io_request(msg):
            IoServer(self.node, self.pid, self.io or self.node.io_sink).handle(msg)

    def exit_signal(self, from_pid: Pid, reason: Any) -> None:
        pass  # nothing links to a call on purpose; like a trapped exit nobody reads

    def connection_lost(self, conn: "Connection", reason: str) -> None:
        if not self.future.done():
            self.future.set_exception(
                NodeDown(f"{self.peer} went down during the call to {self.mfa} ({reason})", node=self.peer))

    # Expirable, for the node's shared deadline timer
    def finished(self) -> bool:
        return self.future.done()

    def expired(self) -> bool:
        if self.future.done():
            return False
        self.future.set_exception(
            RpcTimeout(f"{self.peer}: {self.mfa} timed out after {self.timeout:g}s", node=self.peer,
                       reason=Atom("timeout")))
        return True


def encode_call_frame(pid: bytes, ref: bytes, module: str, function: str, args: list) -> list:
    """The REG_SEND-to-rex frame for one call, as buffers to write in order.

    ``pid`` and ``ref`` are already encoded (see :mod:`.wire`). Usually one
    buffer. Large binary arguments stay separate buffers so a 64 MiB upload is
    handed to the socket without being copied into the frame.
    """
    m, f = wire.atom(module), wire.atom(function)
    big = False
    for a in args:
        if type(a) is bytes and len(a) >= BIG_BINARY:
            big = True
            break
    if not big:
        if args:
            out = bytearray()
            encode_body(args, out)
            a_bytes: bytes | bytearray = out
        else:
            a_bytes = b"j"
        # 'p' {6, Pid, '', rex} {'$gen_call', {Pid, Ref}, {call, M, F, Args, Pid}}
        body = b"".join((_CTRL_HEAD, pid, _CTRL_TAIL, pid, ref, _CALL_HEAD, m, f, a_bytes, pid))
        return [_u32.pack(len(body)) + body]
    head = bytearray(b"\x00\x00\x00\x00")
    head += b"".join((_CTRL_HEAD, pid, _CTRL_TAIL, pid, ref, _CALL_HEAD, m, f))
    head += b"\x6c" + _u32.pack(len(args))
    pieces: list = [head]
    out = head
    for a in args:
        if type(a) is bytes and len(a) >= BIG_BINARY:
            out += b"\x6d" + _u32.pack(len(a))
            pieces.append(a)
            out = bytearray()
            pieces.append(out)
        else:
            encode_body(a, out)
    out += b"j" + pid
    _u32.pack_into(head, 0, sum(len(p) for p in pieces) - 4)
    return [p for p in pieces if p]


_CTRL_HEAD = b"p\x83h\x04a\x06"  # {6 (REG_SEND), FromPid, ...
_CTRL_TAIL = b"w\x00w\x03rex\x83h\x03w\t$gen_callh\x02"  # '', rex}  then {'$gen_call', {Pid, Ref}, ...
_CALL_HEAD = b"h\x05w\x04call"  # {call, M, F, Args, GroupLeader}


async def call(node: "LocalNode", peer: str, module: str, function: str, args: Any = (), *,
               timeout: float | None = 30.0, io: Callable[[str], Any] | None = None) -> Any:
    """``module:function(*args)`` on ``peer``; see LocalNode.rpc."""
    if type(args) is not list:
        args = list(args)
    conn = node._conns.get(peer)
    if conn is None or conn.closed:
        conn = await node.connect(peer)
    fut = conn._loop.create_future()
    proc = RpcCall(node, node._new_pid(), node.make_ref(), fut, peer, "", io)
    proc.mfa = mfa = f"{module}:{function}/{len(args)}"
    wpid = proc.wire_pid = wire.pid(proc.pid)
    node._procs[proc.pid] = proc
    node._wire[wpid] = proc
    conn.add_waiter(proc)
    if timeout is not None:
        proc.timeout = timeout
        node._deadlines_for(conn._loop).add(timeout, proc)
    try:
        pieces = encode_call_frame(wpid, wire.ref(proc.ref), module, function, args)
        if len(pieces) == 1:
            conn.write(pieces[0])
        else:
            conn.write_pieces(pieces)
        if conn.write_paused:
            await conn.drain()
        reply = await fut
    finally:
        conn.remove_waiter(proc)
        del node._wire[wpid]
        proc.close()
    if type(reply) is tuple and len(reply) == 2 and reply[0] == BADRPC:
        raise RpcError(f"{peer}: {mfa} failed: {format_reason(reply[1])}", node=peer, reason=reply[1])
    return reply


def format_reason(reason: Any) -> str:
    """A failure reason in Erlang syntax, on one line, bounded in length."""
    try:
        from ..term.format import format_term
        text = format_term(reason)
    except Exception:
        text = repr(reason)
    text = text.replace("\n", " ")
    if len(text) > MAX_REASON_CHARS:
        text = text[: MAX_REASON_CHARS - 3] + "..."
    return text
