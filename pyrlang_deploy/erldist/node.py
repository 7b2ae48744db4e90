"""LocalNode: our hidden node - its name, creation, processes and connections.

One creation value, chosen at start, is sent in every handshake and stamped on
every pid and reference we mint, so peers never mistake our pids for those of an
older incarnation.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from collections.abc import Callable
from typing import Any

from ..cookie import read_cookie_file  # noqa: F401 (re-exported: erldist.node.read_cookie_file)
from ..errors import ConnectError, HandshakeError, UsageError
from ..term.types import Atom, Pid, Reference
from . import control as ctl
from .carrier import Reach
from .connection import Connection, _DistProtocol
from .framing import max_frame_from_env
from .handshake import ClientHandshake
from .names import is_long_host, own_host, split_node, unique_alive
from .process import LocalProcess, Mailbox
from .proctable import (  # noqa: F401
    DOWN,
    NO_PAYLOAD,
    NOCONNECTION,
    NOPROC,
    PROCESS,
    Deliver,
    ExitMsg,
    ProcessTable,
)
from .rpc import call as _rpc_call
from .rpc import call_future as _rpc_future
from .timers import Deadlines

log = logging.getLogger(__name__)
FINISH_GRACE = 1.5  # what close() gives clean-up work on peers (see spawn(finish=True))


class _Sink(LocalProcess):
    """The node's own pid: sender of anonymous REG_SENDs, drops what it is sent."""

    __slots__ = ()

    def deliver(self, msg: Any) -> None:
        log.debug("message to the node's own pid dropped")


def _random_creation() -> int:
    """Uniform in 4..0xFFFFFFF3 (4 + secrets.randbelow(0xFFFFFFF0), without its imports)."""
    while True:
        v = int.from_bytes(os.urandom(4), "big")
        if v < 0xFFFFFFF0:
            return 4 + v


class LocalNode:
    """A hidden Erlang node in this Python process.

    ``name``: ``"alive@host"``, or just ``"alive"`` (the host part is then chosen to
    match the first peer's short/long form), or None for ``erldeploy-<random>``.
    ``cookie``: None reads ``~/.erlang.cookie``.
    ``net_ticktime``: the peers' tick time if known; otherwise each connection asks
    its peer (``net_kernel:get_net_ticktime()``) right after connecting.
    ``max_frame``: the largest frame a peer may send, in bytes (default
    ``ERLDEPLOY_MAX_FRAME`` or 64 MiB); a bigger one drops that connection.

    The process table (``self.table``, sans-IO, proctable.py) decides what links,
    monitors and exits mean; this class owns the connections and carries out the
    effects the table returns (:meth:`apply`).

    The hot-path interface, used by rpc.py and connection.py (nothing else of
    this class is reached into):
      ``table``                 pids/refs minted, ``table.calls`` (encoded pid -> call)
      ``connection(peer)``      the open Connection or None, without awaiting
      ``deadlines(loop)``       the shared RPC timeout timers
      ``spawn(coro)``           a task the node cancels when it closes
      ``apply(effects)``        carry out what the table decided
      ``on_control``, ``on_connection_lost``   what a connection reports back
      ``inline_wait``, ``last_inline_yield``   pacing of lone calls (see rpc.call)
    """

    def __init__(
        self,
        name: str | None = None,
        cookie: str | None = None,
        *,
        creation: int | None = None,
        epmd_port: int | None = None,
        net_ticktime: float | None = None,
        io_sink: Callable[[str], Any] | None = None,
        inline_wait: bool = True,
        max_frame: int | None = None,
        reach: Reach | None = None,
    ) -> None:
        self._cookie = read_cookie_file() if cookie is None else cookie
        self._host: str | None
        if name and "@" in name:
            self._alive, self._host = split_node(name)
        else:
            self._alive, self._host = name or unique_alive(), None
        # creation 0 means "any incarnation" to some OTP checks; stay clear of it
        self.creation = creation if creation is not None else _random_creation()
        self.epmd_port = epmd_port
        self.reach = reach or Reach()  # carrier (TCP/TLS) and ports (epmd or given)
        self.net_ticktime = net_ticktime
        self.io_sink: Callable[[str], Any] = io_sink or _stdout_sink
        # the largest frame a peer may send (and what a compressed term may inflate to)
        self.max_frame = max_frame if max_frame is not None else max_frame_from_env()
        self.table = ProcessTable(self.creation)
        self._conns: dict[str, Connection] = {}
        self._connecting: dict[str, asyncio.Future[Connection]] = {}
        self._deadlines: Deadlines | None = None
        # A lone RPC may wait for its reply on the socket directly (see
        # Connection.wait_inline): it saves two event-loop passes per call.
        self.inline_wait = inline_wait
        self.last_inline_yield = 0.0
        self._tasks: set[asyncio.Task] = set()
        self._finishing: set[asyncio.Task] = set()
        self._closed = False
        self._self_proc: _Sink | None = None

    def __repr__(self) -> str:  # never the cookie
        return f"<LocalNode {self.table.node or self._alive} creation={self.creation} peers={sorted(self._conns)}>"

    async def __aenter__(self) -> LocalNode:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # --- identity ---------------------------------------------------------------------

    @property
    def name(self) -> str:
        """Our node name; fixed by the first connect (short/long form) or first pid."""
        return str(self._node_atom())

    def _node_atom(self, peer_host: str | None = None) -> Atom:
        atom = self.table.node
        if atom is None:
            if self._host is None:
                long = peer_host is not None and is_long_host(peer_host)
                self._host = own_host(long, peer_host)
            atom = Atom(f"{self._alive}@{self._host}")
            self.table.set_node(atom)
        return atom

    @property
    def pid(self) -> Pid:
        """The node's own pid (the sender of messages sent without one)."""
        if self._self_proc is None:
            self._self_proc = _Sink(self, self._new_pid())
            self.table.add(self._self_proc)
        return self._self_proc.pid

    def _new_pid(self) -> Pid:
        self._node_atom()
        return self.table.new_pid()

    def make_ref(self) -> Reference:
        """A reference unique to this node incarnation."""
        self._node_atom()
        return self.table.make_ref()

    # --- processes ----------------------------------------------------------------------

    def mailbox(self, name: str | None = None) -> Mailbox:
        """A new pid with a queue; ``name`` also registers it."""
        mb = Mailbox(self, self._new_pid())
        self.table.add(mb)
        if name is not None:
            self.register(name, mb)
        return mb

    def register(self, name: str, proc: LocalProcess) -> None:
        if not self.table.register(name, proc):
            raise UsageError(f"name {name} is already registered on {self.name}")

    def unregister(self, name: str) -> None:
        self.table.unregister(name)

    def whereis(self, name: str) -> Pid | None:
        proc = self.table.names.get(name)
        return proc.pid if proc is not None else None

    def process_exited(self, proc: LocalProcess, reason: Any) -> None:
        """``proc`` closed: its monitors fire, its links break (called by LocalProcess.close)."""
        self.apply(self.table.exited(proc, reason))

    # --- connections ------------------------------------------------------------------------

    def is_connected(self, peer: str) -> bool:
        conn = self._conns.get(peer)
        return conn is not None and conn.is_open

    @property
    def connections(self) -> dict[str, Connection]:
        return dict(self._conns)

    async def connect(self, peer: str, timeout: float | None = 10.0) -> Connection:
        """The connection to ``peer``, made if needed; concurrent callers share one attempt."""
        conn = self._conns.get(peer)
        if conn is not None and conn.is_open:
            return conn
        if self._closed:
            raise ConnectError(f"cannot connect to {peer}: local node {self._alive} is closed", node=peer)
        pending = self._connecting.get(peer)
        if pending is None:
            pending = asyncio.ensure_future(self._connect(peer, timeout))
            self._connecting[peer] = pending
            pending.add_done_callback(lambda f: (self._connecting.pop(peer, None), f.cancelled() or f.exception()))
        return await asyncio.shield(pending)

    async def _connect(self, peer: str, timeout: float | None) -> Connection:
        alive, host = split_node(peer)
        # our name takes the peer's form (short/long) if we have not got one yet;
        # OTP accepts a hidden client of the other form, so a fixed name is kept as is
        own = self._node_atom(host)
        try:
            async with asyncio.timeout(timeout):
                port = await self.reach.port_of(peer, alive, host, self.epmd_port)
                delay = 0.02
                while True:
                    hs = ClientHandshake(str(own), peer, self._cookie, self.creation,
                                         header=self.reach.handshake_header)
                    try:
                        proto = await self._handshake(hs, peer, host, port)
                        break
                    except HandshakeError:
                        if not hs.retryable:
                            raise
                        # 'nok': the peer still holds our previous connection; it goes soon
                        await asyncio.sleep(delay)
                        delay = min(delay * 2, 0.5)
        except TimeoutError:
            raise ConnectError(f"timed out connecting to {peer} after {timeout:g}s", node=peer) from None
        result = hs.result
        conn = Connection(self, proto, result, self.net_ticktime)
        self._conns[peer] = conn
        proto.attach(conn)
        if self.net_ticktime is None:
            self._spawn(self._learn_tick_time(conn))
        log.debug("connected to %s (flags %x)", peer, int(result.peer_flags))
        return conn

    async def _handshake(self, hs: ClientHandshake, peer: str, host: str, port: int) -> _DistProtocol:
        loop = asyncio.get_running_loop()
        proto = await self.reach.open(lambda: _DistProtocol(hs, loop), peer, host, port)
        try:
            await proto.handshake_done
        except HandshakeError as exc:
            if proto.transport is not None:
                proto.transport.close()
            raise self.reach.explain(exc, proto.lost_exc, peer) from None
        except BaseException:
            if proto.transport is not None:
                proto.transport.close()
            raise
        return proto

    async def _learn_tick_time(self, conn: Connection) -> None:
        try:
            t = await self.rpc(conn.peer, "net_kernel", "get_net_ticktime", [], timeout=30.0)
        except Exception as exc:
            log.debug("could not learn net_ticktime of %s: %s", conn.peer, exc)
            return
        if isinstance(t, tuple) and len(t) == 2:  # {ongoing_change_to, T}: T is where it is going
            t = t[1]
        if isinstance(t, int) and t > 0 and not conn.closed:
            conn.set_tick_time(min(t, conn.tick_time) if conn.tick_time_known else t)

    async def disconnect(self, peer: str) -> None:
        conn = self._conns.get(peer)
        if conn is not None:
            conn.close("disconnected by us")

    async def close(self) -> None:
        """Close every connection and process; waiters fail with NodeDown."""
        if self._finishing:
            await asyncio.wait(set(self._finishing), timeout=FINISH_GRACE)
        self._closed = True
        for t in list(self._connecting.values()):
            t.cancel()
        for conn in list(self._conns.values()):
            conn.close("local node closed")
        for proc in list(self.table.procs.values()):
            proc.close(Atom("shutdown"))
        for t in [*self._tasks, *self._finishing]:
            t.cancel()
        if self._deadlines is not None:
            self._deadlines.close()
        await asyncio.sleep(0)  # let transports run their close callbacks

    # --- the hot-path interface (see the class docstring) -------------------------------------

    def connection(self, peer: str) -> Connection | None:
        """The open connection to ``peer``, or None (never connects)."""
        conn = self._conns.get(peer)
        return None if conn is None or conn.closed else conn

    def spawn(self, coro: Any, *, finish: bool = False) -> asyncio.Task:
        """Run ``coro`` as a task the node cancels when it closes; with ``finish``,
        :meth:`close` first lets it end (clean-up on a peer, such as stopping a
        timed-out call there), for at most FINISH_GRACE seconds."""
        task = asyncio.ensure_future(coro)
        tasks = self._finishing if finish else self._tasks
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        return task

    _spawn = spawn  # the connect path's name for it

    def deadlines(self, loop: asyncio.AbstractEventLoop) -> Deadlines:
        d = self._deadlines
        if d is None or d.loop is not loop:
            d = self._deadlines = Deadlines(loop)
        return d

    def apply(self, effects: Any) -> None:
        """Carry out what the process table decided: deliveries and control messages."""
        for e in effects:
            t = type(e)
            if t is Deliver:
                e.to.deliver(e.msg)
            elif t is ExitMsg:
                e.to.exit_signal(e.from_pid, e.reason)
            else:
                conn = self._conns.get(e.node)
                if conn is not None:
                    c, payload = e.control(conn.exit_payload)
                    self._try_send_control(conn, c, payload)

    def on_connection_lost(self, conn: Connection, reason: str) -> None:
        """Called by the connection once it is lost: our monitors and links on that peer fire."""
        if self._conns.get(conn.peer) is conn:
            del self._conns[conn.peer]
        log.debug("connection to %s lost: %s", conn.peer, reason)
        self.apply(self.table.node_down(conn.peer))

    # --- sending ------------------------------------------------------------------------------

    async def send(self, dest: Any, msg: Any, *, sender: Pid | None = None) -> None:
        """Send ``msg`` to a pid, to ``(name, node)``, or to a local registered name."""
        if isinstance(dest, Pid):
            if dest.node == self.table.node:
                proc = self.table.lookup(dest)
                if proc is not None:
                    proc.deliver(msg)
                return
            conn = await self.connect(str(dest.node))
            if sender is not None and conn.send_sender:
                conn.send_control(ctl.SendSender(sender, dest), msg)
            else:
                conn.send_control(ctl.Send(dest), msg)
        elif isinstance(dest, tuple) and len(dest) == 2:
            name, node = str(dest[0]), str(dest[1])
            if node == self.table.node:
                await self.send(name, msg)
                return
            conn = await self.connect(node)
            conn.send_control(ctl.RegSend(sender or self.pid, Atom(name)), msg)
        elif isinstance(dest, str):
            proc = self.table.names.get(dest)
            if proc is not None:
                proc.deliver(msg)
            return
        else:
            raise UsageError(f"cannot send to {dest!r}: expected a pid, (name, node) or a name")
        if conn.write_paused:
            await conn.drain()

    def send_nowait(self, to: Pid, msg: Any, sender: Pid | None = None) -> None:
        """Send on an existing connection, or drop (used from inside frame dispatch)."""
        if to.node == self.table.node:
            proc = self.table.lookup(to)
            if proc is not None:
                proc.deliver(msg)
            return
        conn = self._conns.get(str(to.node))
        if conn is None:
            return  # the peer is gone; so is whoever would read this
        if sender is not None and conn.send_sender:
            self._try_send_control(conn, ctl.SendSender(sender, to), msg)
        else:
            self._try_send_control(conn, ctl.Send(to), msg)

    _send_nowait = send_nowait

    def _try_send_control(self, conn: Connection, c: ctl.Control, payload: Any = NO_PAYLOAD) -> None:
        if conn.closed:
            return
        try:
            if payload is NO_PAYLOAD:
                conn.send_control(c)
            else:
                conn.send_control(c, payload)
        except Exception as exc:
            log.debug("could not send %s to %s: %s", type(c).__name__, conn.peer, exc)

    # --- monitors -----------------------------------------------------------------------------

    async def monitor(self, proc: LocalProcess, target: Any) -> Reference:
        """``proc`` monitors ``target`` (a pid or ``(name, node)``); DOWN comes as a message."""
        if isinstance(target, Pid):
            node, wire, shown = str(target.node), target, target
        elif isinstance(target, tuple) and len(target) == 2:
            node, wire = str(target[1]), Atom(str(target[0]))
            shown = (wire, Atom(node))
        else:
            raise UsageError(f"cannot monitor {target!r}: expected a pid or (name, node)")
        self._node_atom()
        if node != self.table.node:
            try:
                await self.connect(node)
            except ConnectError:
                ref = self.table.make_ref()
                proc.deliver((DOWN, ref, PROCESS, shown, NOCONNECTION))
                return ref
        ref, effects = self.table.monitor(proc, node, wire, shown)
        self.apply(effects)
        return ref

    def demonitor(self, proc: LocalProcess, ref: Reference) -> None:
        self.apply(self.table.demonitor(proc, ref))

    # --- incoming signals ---------------------------------------------------------------------

    def on_control(self, conn: Connection, c: ctl.Control, payload: Any) -> None:
        """Called by the connection for each control message other than SEND."""
        handler = _HANDLERS.get(type(c))
        if handler is not None:
            handler(self, conn, c, payload)

    def _on_send(self, conn: Connection, c: Any, msg: Any) -> None:
        proc = self.table.lookup(c.to_pid)
        if proc is not None:
            proc.deliver(msg)

    def _on_reg_send(self, conn: Connection, c: Any, msg: Any) -> None:
        proc = self.table.names.get(c.to_name)
        if proc is not None:
            proc.deliver(msg)
        else:
            log.debug("%s sent to unregistered name %s", conn.peer, c.to_name)

    def _on_alias_send(self, conn: Connection, c: Any, msg: Any) -> None:
        proc = self.table.aliases.get(c.alias)
        if proc is not None:
            proc.deliver(msg)

    def _on_altact_sig(self, conn: Connection, c: ctl.AltactSigSend, payload: Any) -> None:
        # OTP 28's op 37: handled as the older op of the same meaning
        legacy = c.legacy()
        if legacy is not None:
            self.on_control(conn, legacy, payload)
            return
        proc = self.table.aliases.get(c.to)  # exit/2 to an alias
        if proc is not None:
            proc.exit_signal(c.from_pid, payload)

    def _on_link(self, conn: Connection, c: ctl.Link, _: Any) -> None:
        self.apply(self.table.peer_link(c.from_pid, c.to_pid))

    def _on_unlink(self, conn: Connection, c: Any, _: Any) -> None:
        self.table.peer_unlink(c.from_pid, c.to_pid)
        if isinstance(c, ctl.UnlinkId):
            # must reach the peer before any later signal from us: write it now
            self._try_send_control(conn, ctl.UnlinkIdAck(c.id, c.to_pid, c.from_pid))

    def _on_exit(self, conn: Connection, c: Any, payload: Any) -> None:
        reason = payload if c.PAYLOAD else c.reason
        link = isinstance(c, (ctl.Exit, ctl.ExitTT, ctl.PayloadExit, ctl.PayloadExitTT))
        self.apply(self.table.peer_exit(c.from_pid, c.to_pid, reason, link=link))

    def _on_monitor(self, conn: Connection, c: ctl.MonitorP, _: Any) -> None:
        self.apply(self.table.peer_monitor(c.from_pid, c.to_proc, c.ref))

    def _on_demonitor(self, conn: Connection, c: ctl.DemonitorP, _: Any) -> None:
        self.table.peer_demonitor(c.to_proc, c.ref)

    def _on_monitor_exit(self, conn: Connection, c: Any, payload: Any) -> None:
        reason = payload if c.PAYLOAD else c.reason
        self.apply(self.table.peer_down(c.ref, reason))

    # --- rpc -----------------------------------------------------------------------------------

    # ``await node.rpc(peer, module, function, args=(), *, timeout=30.0, io=None)``:
    # module:function(args...) on peer through its rex server; see rpc.call.
    # Bound directly (not wrapped) because it is the hot path of everything.
    rpc = _rpc_call
    # ``node.rpc_future(...)``: the same, returning the future at once (no Task per call)
    rpc_future = _rpc_future


def _stdout_sink(text: str) -> None:
    sys.stdout.write(text)
    sys.stdout.flush()


_HANDLERS: dict[type, Callable[..., None]] = {
    ctl.Send: LocalNode._on_send,
    ctl.SendTT: LocalNode._on_send,
    ctl.SendSender: LocalNode._on_send,
    ctl.SendSenderTT: LocalNode._on_send,
    ctl.RegSend: LocalNode._on_reg_send,
    ctl.RegSendTT: LocalNode._on_reg_send,
    ctl.AliasSend: LocalNode._on_alias_send,
    ctl.AliasSendTT: LocalNode._on_alias_send,
    ctl.AltactSigSend: LocalNode._on_altact_sig,
    ctl.Link: LocalNode._on_link,
    ctl.Unlink: LocalNode._on_unlink,
    ctl.UnlinkId: LocalNode._on_unlink,
    ctl.Exit: LocalNode._on_exit,
    ctl.ExitTT: LocalNode._on_exit,
    ctl.PayloadExit: LocalNode._on_exit,
    ctl.PayloadExitTT: LocalNode._on_exit,
    ctl.Exit2: LocalNode._on_exit,
    ctl.Exit2TT: LocalNode._on_exit,
    ctl.PayloadExit2: LocalNode._on_exit,
    ctl.PayloadExit2TT: LocalNode._on_exit,
    ctl.MonitorP: LocalNode._on_monitor,
    ctl.DemonitorP: LocalNode._on_demonitor,
    ctl.MonitorPExit: LocalNode._on_monitor_exit,
    ctl.PayloadMonitorPExit: LocalNode._on_monitor_exit,
}
