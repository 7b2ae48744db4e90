"""One remote call through ``rex``, whichever driver carries it.

We send ``{'$gen_call', {Pid, Ref}, {call, M, F, A, GroupLeader}}`` to ``rex`` and
wait for ``{Ref, Reply}``. Each call gets its own pid, which is both the reply
address and the group leader of the remote call, so many calls can be in flight
on one connection and each call's ``io:format`` output reaches that call's
``io`` callback. Exceptions come back as ``{badrpc, {'EXIT', Reason}}``.

No I/O and no event loop here: :class:`RpcCall` settles a future its driver made
(an asyncio Future in rpc.py, a plain one in blocking.py), and what a timed-out
call leaves running on the node is stopped by the node's driver
(``node.stop_timed_out``), as erpc does.
"""

from __future__ import annotations

import struct
from collections.abc import Callable

from ..errors import NodeDown, RpcError, RpcTimeout, UsageError
from ..term import decode, encode_body
from ..term.types import Atom, Pid, Reference
from . import wire
from .io_server import IoServer, is_io_request
from .process import LocalProcess

TYPE_CHECKING = False  # typing is not imported at run time: see cli/fastpath.py
if TYPE_CHECKING:
    from typing import Any

    from .connection import Connection
    from .node import LocalNode
    from .timers import Deadlines

GEN_CALL = Atom("$gen_call")
CALL = Atom("call")
REX = Atom("rex")
EMPTY = Atom("")
BADRPC = Atom("badrpc")

STOP_GRACE = 1.0  # how long stopping a timed-out call on the node may take
BIG_BINARY = 1 << 16  # args at least this large are written from the caller's buffer, not copied
MAX_REASON_CHARS = 2000

_u32 = struct.Struct(">I")

# Kills what a timed-out call left running: rex's worker for it has our call's
# pid as group leader (we pass it in the call), and so does anything it spawned.
STOP_SOURCE = ("[exit(P, kill) || P <- erlang:processes(), P =/= self(), "
               "erlang:process_info(P, group_leader) =:= {group_leader, Leader}], ok.")


class RpcCall(LocalProcess):
    """One call in flight: its reply address, group leader and future.

    Lives only in the node's wire-pid table (keyed by the encoded pid), and builds
    its Pid and Reference objects only if something asks for them (io, monitors):
    a plain call never does.
    """

    __slots__ = ("conn", "future", "io", "peer", "module", "function", "nargs", "wire_pid",
                 "reply_prefix", "timeout", "stop_on_timeout", "stopping", "deadlines", "_ids", "_ref", "_ref_ids")

    def __init__(self, node: LocalNode, conn: Connection, future: Any, peer: str,
                 module: str, function: str, nargs: int, io: Callable[[str], Any] | None,
                 pid_ids: tuple[int, int], wire_pid: bytes, ref_ids: tuple[int, int, int], wire_ref: bytes) -> None:
        LocalProcess.__init__(self, node, None)  # the Pid object is made on first use
        self.conn = conn
        self.future = future
        self.peer = peer
        self.module = module
        self.function = function
        self.nargs = nargs
        self.io = io
        self._ids = pid_ids
        self.wire_pid = wire_pid
        self._ref = None
        self._ref_ids = ref_ids
        self.reply_prefix = b"\x83h\x02" + wire_ref  # {Ref, ...
        self.timeout = 0.0
        self.stop_on_timeout = True
        self.stopping: Any = None  # the driver's stopping of our worker on the node (a Task on asyncio)
        self.deadlines: Deadlines | None = None  # the timer set holding our timeout, if any

    def _make_pid(self) -> Pid:
        table = self.node.table
        return Pid(table.node, self._ids[0], self._ids[1], table.creation)

    @property
    def ref(self) -> Reference:
        if self._ref is None:
            table = self.node.table
            self._ref = Reference(table.node, table.creation, self._ref_ids)
        return self._ref

    @property
    def mfa(self) -> str:
        return f"{self.module}:{self.function}/{self.nargs}"

    # --- outcomes ---------------------------------------------------------------

    def _finish(self) -> None:
        """Leave the node: the pid is dead from now on (late replies are dropped)."""
        if self.closed:
            return
        self.closed = True
        node = self.node
        effects = node.table.end_call(self.wire_pid, self)
        self.conn.remove_waiter(self)
        if self.deadlines is not None:
            self.deadlines.remove(self)
        if effects:
            node.apply(effects)

    def _reply(self, reply: Any) -> None:
        self._finish()
        fut = self.future
        if fut.done():
            return
        if type(reply) is tuple and len(reply) == 2 and reply[0] == BADRPC:
            fut.set_exception(RpcError(f"{self.peer}: {self.mfa} failed: {format_reason(reply[1])}",
                                       node=self.peer, reason=reply[1]))
        else:
            fut.set_result(reply)

    def deliver_frame(self, frame: bytes, off: int) -> None:
        """The message part of a frame sent to us, still encoded."""
        prefix = self.reply_prefix
        if frame.startswith(prefix, off) and len(frame) - off < 65536:
            # {OurRef, Reply}: decode only Reply (no Reference rebuilt, no tuple)
            self._reply(decode(b"\x83" + frame[off + len(prefix):], 0, self.conn.max_frame)[0])
            return
        self.deliver(decode(frame, off, self.conn.max_frame)[0])

    def deliver(self, msg: Any) -> None:
        if type(msg) is tuple and len(msg) == 2 and msg[0] == self.ref:
            self._reply(msg[1])
        elif is_io_request(msg):
            IoServer(self.node, self.pid, self.io or self.node.io_sink).handle(msg)

    def exit_signal(self, from_pid: Pid, reason: Any) -> None:
        pass  # nothing links to a call on purpose; like a trapped exit nobody reads

    def close(self, reason: Any = None) -> None:
        self._finish()
        if not self.future.done():
            self.future.cancel()

    def connection_lost(self, conn: Connection, reason: str) -> None:
        self._finish()
        if not self.future.done():
            self.future.set_exception(NodeDown.during_call(self.peer, self.mfa, reason))

    def expired(self) -> None:
        """The deadline passed (called by the node's deadline timer).

        Like erpc, a call that timed out does not go on running on the node: the
        process rex started for it (and whatever it started under the same group
        leader, our pid) is killed. The caller of :func:`call` gets the
        RpcTimeout once that is done (at most STOP_GRACE later).
        """
        pid = self.pid  # before _finish: made from our ids, still valid as a name
        self._finish()
        if self.stop_on_timeout and not self.conn.closed:
            self.stopping = self.node.stop_timed_out(self.peer, pid)
        if not self.future.done():
            self.future.set_exception(
                RpcTimeout(f"{self.peer}: {self.mfa} timed out after {self.timeout:g}s", node=self.peer,
                           reason=Atom("timeout")))


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


def check_timeout(timeout: Any) -> float:
    """A call timeout in seconds: a positive, finite number (UsageError otherwise)."""
    try:
        t = float(timeout)
    except (TypeError, ValueError):
        t = _NAN
    if not 0 < t < _INF:
        raise UsageError(f"timeout must be a positive number of seconds, not {timeout!r}")
    return t


_NAN = float("nan")
_INF = float("inf")


def format_reason(reason: Any) -> str:
    """A failure reason in Erlang syntax, on one line, bounded in length."""
    from ..term.format import format_term, safe_repr
    try:
        text = format_term(reason)
    except Exception:
        text = safe_repr(reason, MAX_REASON_CHARS)
    text = text.replace("\n", " ")
    if len(text) > MAX_REASON_CHARS:
        text = text[: MAX_REASON_CHARS - 3] + "..."
    return text
