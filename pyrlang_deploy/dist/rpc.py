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

    __slots__ = ("ref", "future", "io", "peer", "mfa")

    def __init__(self, node: "LocalNode", pid: Pid, ref: Reference, future: asyncio.Future,
                 peer: str, mfa: str, io: Callable[[str], Any]) -> None:
        super().__init__(node, pid)
        self.ref = ref
        self.future = future
        self.peer = peer
        self.mfa = mfa
        self.io = io

    def deliver(self, msg: Any) -> None:
        if type(msg) is tuple and len(msg) == 2 and msg[0] == self.ref:
            if not self.future.done():
                self.future.set_result(msg[1])
        elif is_io_request(msg):
            IoServer(self.node, self.pid, self.io).handle(msg)

    def exit_signal(self, from_pid: Pid, reason: Any) -> None:
        pass  # a call is not a process anyone should link to; ignore like a trap-exit drop

    def connection_lost(self, conn: "Connection", reason: str) -> None:
        if not self.future.done():
            self.future.set_exception(
                NodeDown(f"{self.peer} went down during the call to {self.mfa} ({reason})", node=self.peer))

    def timed_out(self, timeout: float) -> None:
        if not self.future.done():
            self.future.set_exception(
                RpcTimeout(f"{self.peer}: {self.mfa} timed out after {timeout:g}s", node=self.peer,
                           reason=Atom("timeout")))


def _mfa(module: str, function: str, nargs: int) -> str:
    return f"{module}:{function}/{nargs}"


def encode_call_frame(pid: Pid, ref: Reference, module: str, function: str, args: list) -> list:
    """The REG_SEND-to-rex frame for one call, as buffers to write in order.

    Usually one buffer. Large binary arguments stay separate buffers so a 64 MiB
    upload is handed to the socket without being copied into the frame.
    """
    out = bytearray(b"\x00\x00\x00\x00p\x83")
    encode_body((6, pid, EMPTY, REX), out)
    out += b"\x83"
    big = [i for i, a in enumerate(args) if type(a) is bytes and len(a) >= BIG_BINARY]
    if not big:
        encode_body((GEN_CALL, (pid, ref), (CALL, Atom(module), Atom(function), args, pid)), out)
        _u32.pack_into(out, 0, len(out) - 4)
        return [out]
    # {'$gen_call', {Pid, Ref}, {call, M, F, [A1, ..., An], GL}} written by hand around the big ones
    out += b"\x68\x03"
    encode_body(GEN_CALL, out)
    encode_body((pid, ref), out)
    out += b"\x68\x05"
    encode_body(CALL, out)
    encode_body(Atom(module), out)
    encode_body(Atom(function), out)
    out += b"\x6c" + _u32.pack(len(args))
    pieces: list = []
    for a in args:
        if type(a) is bytes and len(a) >= BIG_BINARY:
            out += b"\x6d" + _u32.pack(len(a))
            pieces.append(out)
            pieces.append(a)
            out = bytearray()
        else:
            encode_body(a, out)
    out += b"\x6a"
    encode_body(pid, out)
    pieces.append(out)
    _u32.pack_into(pieces[0], 0, sum(len(p) for p in pieces) - 4)
    return pieces


async def call(node: "LocalNode", peer: str, module: str, function: str, args: Any = (), *,
               timeout: float | None = 30.0, io: Callable[[str], Any] | None = None) -> Any:
    """``module:function(*args)`` on ``peer``; see LocalNode.rpc."""
    args = list(args)
    conn = node._conns.get(peer)
    if conn is None or conn.closed:
        conn = await node.connect(peer)
    loop = asyncio.get_running_loop()
    fut = loop.create_future()
    mfa = _mfa(module, function, len(args))
    proc = RpcCall(node, node._new_pid(), node.make_ref(), fut, peer, mfa, io or node.io_sink)
    node._procs[proc.pid] = proc
    conn.add_waiter(proc)
    handle = loop.call_later(timeout, proc.timed_out, timeout) if timeout is not None else None
    try:
        pieces = encode_call_frame(proc.pid, proc.ref, module, function, args)
        if len(pieces) == 1:
            conn.write(pieces[0])
        else:
            conn.write_pieces(pieces)
        if conn.write_paused:
            await conn.drain()
        reply = await fut
    finally:
        if handle is not None:
            handle.cancel()
        conn.remove_waiter(proc)
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
