"""LocalNode: our hidden node on asyncio - its processes and connections.

One creation value, chosen at start, is sent in every handshake and stamped on
every pid and reference we mint, so peers never mistake our pids for those of an
older incarnation.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from ..cookie import read_cookie_file  # noqa: F401 (re-exported: erldist.node.read_cookie_file)
from ..errors import ConnectError, HandshakeError, UsageError
from ..term.types import Atom, Pid, Reference
from . import control as ctl
from .carrier import Reach
from .connection import Connection, _DistProtocol
from .debuglog import get_logger
from .handshake import ClientHandshake
from .names import split_node
from .nodecore import NodeCore
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

log = get_logger(__name__)
FINISH_GRACE = 1.5  # what close() gives clean-up work on peers (see spawn(finish=True))


class LocalNode(NodeCore):
    """A hidden Erlang node in this Python process, on asyncio.

    ``name``, ``cookie``, ``creation``, ``epmd_port``, ``io_sink``, ``max_frame``:
    see NodeCore (nodecore.py), which also holds identity and signal handling.
    ``net_ticktime``: the peers' tick time if known; otherwise each connection asks
    its peer (``net_kernel:get_net_ticktime()``) right after connecting.

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
        NodeCore.__init__(self, name, cookie, creation=creation, epmd_port=epmd_port, io_sink=io_sink,
                          max_frame=max_frame)
        self.reach = reach or Reach()  # carrier (TCP/TLS) and ports (epmd or given)
        self.net_ticktime = net_ticktime
        self._connecting: dict[str, asyncio.Future[Connection]] = {}
        self._deadlines: Deadlines | None = None
        # A lone RPC may wait for its reply on the socket directly (see
        # Connection.wait_inline): it saves two event-loop passes per call.
        self.inline_wait = inline_wait
        self.last_inline_yield = 0.0
        self._tasks: set[asyncio.Task] = set()
        self._finishing: set[asyncio.Task] = set()
        self._closed = False

    def __repr__(self) -> str:  # never the cookie
        return f"<LocalNode {self.table.node or self._alive} creation={self.creation} peers={sorted(self._conns)}>"

    async def __aenter__(self) -> LocalNode:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

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
            raise ConnectError.timed_out(peer, timeout) from None
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

    def stop_timed_out(self, peer: str, leader: Pid) -> asyncio.Task:
        """Kill on ``peer`` what a timed-out call (group leader ``leader``) left running;
        close() lets it finish (see rpc.stop_calls_led_by)."""
        from .rpc import stop_calls_led_by

        return self.spawn(stop_calls_led_by(self, peer, leader), finish=True)

    def deadlines(self, loop: asyncio.AbstractEventLoop) -> Deadlines:
        d = self._deadlines
        if d is None or d.loop is not loop:
            d = self._deadlines = Deadlines(loop)
        return d

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

    # --- rpc -----------------------------------------------------------------------------------

    # ``await node.rpc(peer, module, function, args=(), *, timeout=30.0, io=None)``:
    # module:function(args...) on peer through its rex server; see rpc.call.
    # Bound directly (not wrapped) because it is the hot path of everything.
    rpc = _rpc_call
    # ``node.rpc_future(...)``: the same, returning the future at once (no Task per call)
    rpc_future = _rpc_future


