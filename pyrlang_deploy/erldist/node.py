"""LocalNode: our hidden node - its name, creation, processes and connections.

One creation value, chosen at start, is sent in every handshake and stamped on
every pid and reference we mint, so peers never mistake our pids for those of an
older incarnation.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import struct
import sys
from typing import Any, Callable

from ..cookie import read_cookie_file  # noqa: F401 (re-exported: erldist.node.read_cookie_file)
from ..errors import ConnectError, HandshakeError, UsageError
from ..term.types import Atom, Pid, Reference
from . import control as ctl
from . import wire
from .carrier import Reach
from .connection import Connection, _DistProtocol
from .handshake import ClientHandshake
from .names import is_long_host, own_host, split_node, unique_alive
from .process import DOWN, PROCESS, LocalProcess, Mailbox
from .rpc import call as _rpc_call
from .rpc import call_future as _rpc_future
from .timers import Deadlines

log = logging.getLogger(__name__)

NOPROC = Atom("noproc")
NOCONNECTION = Atom("noconnection")

_III = struct.Struct(">III")
_U32 = struct.Struct(">I")
_PID_ID_LIMIT = 1 << 15  # erl_interface's pid number width; every OTP accepts it
_PID_SERIAL_LIMIT = 1 << 13
_REF_ID0_LIMIT = 1 << 18  # the first word of a reference is 18 bits on the node


class _Sink(LocalProcess):
    """The node's own pid: sender of anonymous REG_SENDs, drops what it is sent."""

    __slots__ = ()

    def deliver(self, msg: Any) -> None:
        log.debug("message to the node's own pid dropped")


class LocalNode:
    """A hidden Erlang node in this Python process.

    ``name``: ``"alive@host"``, or just ``"alive"`` (the host part is then chosen to
    match the first peer's short/long form), or None for ``erldeploy-<random>``.
    ``cookie``: None reads ``~/.erlang.cookie``.
    ``net_ticktime``: the peers' tick time if known; otherwise each connection asks
    its peer (``net_kernel:get_net_ticktime()``) right after connecting.
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
        reach: Reach | None = None,
    ) -> None:
        self._cookie = read_cookie_file() if cookie is None else cookie
        self._host: str | None
        if name and "@" in name:
            self._alive, self._host = split_node(name)
        else:
            self._alive, self._host = name or unique_alive(), None
        # creation 0 means "any incarnation" to some OTP checks; stay clear of it
        self.creation = creation if creation is not None else 4 + secrets.randbelow(0xFFFFFFF0)
        self.epmd_port = epmd_port
        self.reach = reach or Reach()  # carrier (TCP/TLS) and ports (epmd or given)
        self.net_ticktime = net_ticktime
        self.io_sink: Callable[[str], Any] = io_sink or _stdout_sink
        self._atom: Atom | None = None
        self._pid_prefix = b""
        self._ref_prefix = b""
        self._conns: dict[str, Connection] = {}
        self._connecting: dict[str, asyncio.Future[Connection]] = {}
        self._procs: dict[Pid, LocalProcess] = {}
        self._wire: dict[bytes, LocalProcess] = {}  # encoded pid -> process, for the reply fast path
        self._deadlines: Deadlines | None = None
        # A lone RPC may wait for its reply on the socket directly (see
        # Connection.wait_inline): it saves two event-loop passes per call.
        self.inline_wait = inline_wait
        self._last_yield = 0.0
        self._names: dict[str, LocalProcess] = {}
        self._aliases: dict[Reference, LocalProcess] = {}
        self._pid_id = 0
        self._pid_serial = 0
        self._ref_count = 0
        self._ref_salt = secrets.randbits(32)
        self._tasks: set[asyncio.Task] = set()
        self._closed = False
        self._self_proc: _Sink | None = None

    def __repr__(self) -> str:  # never the cookie
        return f"<LocalNode {self._atom or self._alive} creation={self.creation} peers={sorted(self._conns)}>"

    async def __aenter__(self) -> "LocalNode":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # --- identity ---------------------------------------------------------------------

    @property
    def name(self) -> str:
        """Our node name; fixed by the first connect (short/long form) or first pid."""
        return str(self._node_atom())

    def _node_atom(self, peer_host: str | None = None) -> Atom:
        if self._atom is None:
            if self._host is None:
                long = peer_host is not None and is_long_host(peer_host)
                self._host = own_host(long, peer_host)
            self._atom = Atom(f"{self._alive}@{self._host}")
            # encoded prefixes of our pids and refs, for the RPC fast path
            self._pid_prefix = b"X" + wire.atom(self._atom)
            self._ref_prefix = b"Z\x00\x03" + wire.atom(self._atom) + _U32.pack(self.creation)
        return self._atom

    @property
    def pid(self) -> Pid:
        """The node's own pid (the sender of messages sent without one)."""
        if self._self_proc is None:
            self._self_proc = _Sink(self, self._new_pid())
            self._procs[self._self_proc.pid] = self._self_proc
        return self._self_proc.pid

    def _new_pid(self) -> Pid:
        self._pid_id += 1
        if self._pid_id >= _PID_ID_LIMIT:
            self._pid_id = 1
            self._pid_serial = (self._pid_serial + 1) % _PID_SERIAL_LIMIT
        return Pid(self._atom or self._node_atom(), self._pid_id, self._pid_serial, self.creation)

    def _new_wire_pid(self) -> tuple[tuple[int, int], bytes]:
        """(id, serial) of a new pid and its encoding (NEW_PID_EXT); no Pid object."""
        if self._atom is None:
            self._node_atom()
        n = self._pid_id = self._pid_id + 1
        if n >= _PID_ID_LIMIT:
            n = self._pid_id = 1
            self._pid_serial = (self._pid_serial + 1) % _PID_SERIAL_LIMIT
        return (n, self._pid_serial), self._pid_prefix + _III.pack(n, self._pid_serial, self.creation)

    def _new_wire_ref(self) -> tuple[tuple[int, int, int], bytes]:
        """The ids of a new reference and its encoding (NEWER_REFERENCE_EXT)."""
        n = self._ref_count = self._ref_count + 1
        ids = (n % _REF_ID0_LIMIT, (n >> 18) & 0xFFFFFFFF, self._ref_salt)
        return ids, self._ref_prefix + _III.pack(*ids)

    def _local(self, pid: Any) -> LocalProcess | None:
        """Our process with this pid: a mailbox etc., or an RPC in flight."""
        proc = self._procs.get(pid)
        if proc is None and type(pid) is Pid and pid.node == self._atom and self._wire:
            proc = self._wire.get(self._pid_prefix + _III.pack(pid.id, pid.serial, pid.creation))
        return proc

    def make_ref(self) -> Reference:
        """A reference unique to this node incarnation."""
        if self._atom is None:
            self._node_atom()
        return Reference(self._atom, self.creation, self._new_wire_ref()[0])

    # --- processes ----------------------------------------------------------------------

    def mailbox(self, name: str | None = None) -> Mailbox:
        """A new pid with a queue; ``name`` also registers it."""
        mb = Mailbox(self, self._new_pid())
        self._procs[mb.pid] = mb
        if name is not None:
            self.register(name, mb)
        return mb

    def register(self, name: str, proc: LocalProcess) -> None:
        if name in self._names and self._names[name] is not proc:
            raise UsageError(f"name {name} is already registered on {self.name}")
        self._names[name] = proc
        proc.name = Atom(name)

    def unregister(self, name: str) -> None:
        proc = self._names.pop(name, None)
        if proc is not None:
            proc.name = None

    def whereis(self, name: str) -> Pid | None:
        proc = self._names.get(name)
        return proc.pid if proc is not None else None

    def _process_exited(self, proc: LocalProcess, reason: Any) -> None:
        self._procs.pop(proc.pid, None)
        if proc.name is not None and self._names.get(proc.name) is proc:
            del self._names[proc.name]
        if self._aliases:
            for ref in [r for r, p in self._aliases.items() if p is proc]:
                del self._aliases[ref]
        if proc.monitored_by:
            for ref, (watcher, target) in proc.monitored_by.items():
                self._signal_down(watcher, target, ref, reason)
            proc.monitored_by.clear()
        if proc.links:
            for other in proc.links:
                self._signal_exit(proc.pid, other, reason)
            proc.links.clear()
        if proc.monitoring:
            for conn in self._conns.values():
                for ref in [r for r, (p, _) in conn.monitors.items() if p is proc]:
                    _, target = conn.monitors.pop(ref)
                    self._try_send_control(conn, ctl.DemonitorP(proc.pid, _wire_target(target), ref))
            for other in self._procs.values():
                if other.monitored_by:
                    for ref in [r for r, (w, _) in other.monitored_by.items() if w == proc.pid]:
                        del other.monitored_by[ref]

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
        self._closed = True
        for t in list(self._connecting.values()):
            t.cancel()
        for conn in list(self._conns.values()):
            conn.close("local node closed")
        for proc in list(self._procs.values()):
            proc.close(Atom("shutdown"))
        for t in list(self._tasks):
            t.cancel()
        if self._deadlines is not None:
            self._deadlines.close()
        await asyncio.sleep(0)  # let transports run their close callbacks

    def _spawn(self, coro: Any) -> asyncio.Task:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _connection_lost(self, conn: Connection, reason: str) -> None:
        if self._conns.get(conn.peer) is conn:
            del self._conns[conn.peer]
        log.debug("connection to %s lost: %s", conn.peer, reason)
        monitors, conn.monitors = conn.monitors, {}
        for ref, (proc, target) in monitors.items():
            proc.deliver((DOWN, ref, PROCESS, target, NOCONNECTION))
        peer = conn.peer
        for proc in list(self._procs.values()):
            if proc.monitored_by:
                for ref in [r for r, (w, _) in proc.monitored_by.items() if w.node == peer]:
                    del proc.monitored_by[ref]
            if proc.links:
                for other in [p for p in proc.links if p.node == peer]:
                    proc.links.discard(other)
                    proc.exit_signal(other, NOCONNECTION)

    # --- sending ------------------------------------------------------------------------------

    async def send(self, dest: Any, msg: Any, *, sender: Pid | None = None) -> None:
        """Send ``msg`` to a pid, to ``(name, node)``, or to a local registered name."""
        if isinstance(dest, Pid):
            if dest.node == self._atom:
                proc = self._local(dest)
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
            if node == self._atom:
                await self.send(name, msg)
                return
            conn = await self.connect(node)
            conn.send_control(ctl.RegSend(sender or self.pid, Atom(name)), msg)
        elif isinstance(dest, str):
            proc = self._names.get(dest)
            if proc is not None:
                proc.deliver(msg)
            return
        else:
            raise UsageError(f"cannot send to {dest!r}: expected a pid, (name, node) or a name")
        if conn.write_paused:
            await conn.drain()

    def _send_nowait(self, to: Pid, msg: Any, sender: Pid | None = None) -> None:
        """Send on an existing connection (used from inside frame dispatch)."""
        if to.node == self._atom:
            proc = self._local(to)
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

    def _try_send_control(self, conn: Connection, c: ctl.Control, *payload: Any) -> None:
        if conn.closed:
            return
        try:
            conn.send_control(c, *payload)
        except Exception as exc:
            log.debug("could not send %s to %s: %s", type(c).__name__, conn.peer, exc)

    def _signal_down(self, watcher: Pid, target: Pid | Atom, ref: Reference, reason: Any) -> None:
        """Tell ``watcher`` that the process it monitored as ``target`` is gone."""
        if watcher.node == self._atom:
            proc = self._local(watcher)
            if proc is not None:
                shown = (target, self._atom) if isinstance(target, Atom) else target
                proc.deliver((DOWN, ref, PROCESS, shown, reason))
            return
        conn = self._conns.get(str(watcher.node))
        if conn is not None:
            if conn.exit_payload:
                self._try_send_control(conn, ctl.PayloadMonitorPExit(target, watcher, ref), reason)
            else:
                self._try_send_control(conn, ctl.MonitorPExit(target, watcher, ref, reason))

    def _signal_exit(self, from_pid: Pid, to: Pid, reason: Any) -> None:
        """A broken link: the EXIT signal from our ``from_pid`` to ``to``."""
        if to.node == self._atom:
            proc = self._local(to)
            if proc is not None:
                if proc.links:
                    proc.links.discard(from_pid)
                proc.exit_signal(from_pid, reason)
            return
        conn = self._conns.get(str(to.node))
        if conn is not None:
            if conn.exit_payload:
                self._try_send_control(conn, ctl.PayloadExit(from_pid, to), reason)
            else:
                self._try_send_control(conn, ctl.Exit(from_pid, to, reason))

    # --- monitors -----------------------------------------------------------------------------

    async def _monitor(self, proc: LocalProcess, target: Any) -> Reference:
        ref = self.make_ref()
        if isinstance(target, Pid):
            node, wire, shown = str(target.node), target, target
        elif isinstance(target, tuple) and len(target) == 2:
            node, wire = str(target[1]), Atom(str(target[0]))
            shown = (wire, Atom(node))
        else:
            raise UsageError(f"cannot monitor {target!r}: expected a pid or (name, node)")
        if node == self._atom:
            other = self._local(wire) if isinstance(wire, Pid) else self._names.get(wire)
            if other is None:
                proc.deliver((DOWN, ref, PROCESS, shown, NOPROC))
            else:
                proc.monitoring = True
                other.add_monitor(ref, proc.pid, wire)
            return ref
        try:
            conn = await self.connect(node)
        except ConnectError:
            proc.deliver((DOWN, ref, PROCESS, shown, NOCONNECTION))
            return ref
        proc.monitoring = True
        conn.monitors[ref] = (proc, shown)
        conn.send_control(ctl.MonitorP(proc.pid, wire, ref))
        return ref

    async def _demonitor(self, proc: LocalProcess, ref: Reference) -> None:
        for conn in self._conns.values():
            entry = conn.monitors.pop(ref, None)
            if entry is not None:
                self._try_send_control(conn, ctl.DemonitorP(proc.pid, _wire_target(entry[1]), ref))
                return
        for other in self._procs.values():
            if other.monitored_by and other.monitored_by.pop(ref, None) is not None:
                return

    # --- incoming signals ---------------------------------------------------------------------

    def _on_control(self, conn: Connection, c: ctl.Control, payload: Any) -> None:
        handler = _HANDLERS.get(type(c))
        if handler is not None:
            handler(self, conn, c, payload)

    def _on_send(self, conn: Connection, c: Any, msg: Any) -> None:
        proc = self._local(c.to_pid)
        if proc is not None:
            proc.deliver(msg)

    def _on_reg_send(self, conn: Connection, c: Any, msg: Any) -> None:
        proc = self._names.get(c.to_name)
        if proc is not None:
            proc.deliver(msg)
        else:
            log.debug("%s sent to unregistered name %s", conn.peer, c.to_name)

    def _on_alias_send(self, conn: Connection, c: Any, msg: Any) -> None:
        proc = self._aliases.get(c.alias)
        if proc is not None:
            proc.deliver(msg)

    def _on_altact_sig(self, conn: Connection, c: ctl.AltactSigSend, payload: Any) -> None:
        # OTP 28's op 37: handled as the older op of the same meaning
        legacy = c.legacy()
        if legacy is not None:
            self._on_control(conn, legacy, payload)
            return
        proc = self._aliases.get(c.to)  # exit/2 to an alias
        if proc is not None:
            proc.exit_signal(c.from_pid, payload)

    def _on_link(self, conn: Connection, c: ctl.Link, _: Any) -> None:
        proc = self._local(c.to_pid)
        if proc is None:
            self._signal_exit(c.to_pid, c.from_pid, NOPROC)
        else:
            proc.add_link(c.from_pid)

    def _on_unlink(self, conn: Connection, c: Any, _: Any) -> None:
        proc = self._local(c.to_pid)
        if proc is not None and proc.links:
            proc.links.discard(c.from_pid)
        if isinstance(c, ctl.UnlinkId):
            # must reach the peer before any later signal from us: write it now
            self._try_send_control(conn, ctl.UnlinkIdAck(c.id, c.to_pid, c.from_pid))

    def _on_exit(self, conn: Connection, c: Any, payload: Any) -> None:
        reason = payload if c.PAYLOAD else c.reason
        proc = self._local(c.to_pid)
        if proc is None:
            return
        if isinstance(c, (ctl.Exit, ctl.ExitTT, ctl.PayloadExit, ctl.PayloadExitTT)):
            if not proc.links or c.from_pid not in proc.links:
                return  # a link we already dropped
            proc.links.discard(c.from_pid)
        proc.exit_signal(c.from_pid, reason)

    def _on_monitor(self, conn: Connection, c: ctl.MonitorP, _: Any) -> None:
        target = c.to_proc
        proc = self._names.get(target) if isinstance(target, str) else self._local(target)
        if proc is None:
            self._signal_down(c.from_pid, target, c.ref, NOPROC)
        else:
            proc.add_monitor(c.ref, c.from_pid, target)

    def _on_demonitor(self, conn: Connection, c: ctl.DemonitorP, _: Any) -> None:
        target = c.to_proc
        proc = self._names.get(target) if isinstance(target, str) else self._local(target)
        if proc is not None and proc.monitored_by:
            proc.monitored_by.pop(c.ref, None)

    def _on_monitor_exit(self, conn: Connection, c: Any, payload: Any) -> None:
        reason = payload if c.PAYLOAD else c.reason
        entry = conn.monitors.pop(c.ref, None)
        if entry is not None:
            proc, shown = entry
            proc.deliver((DOWN, c.ref, PROCESS, shown, reason))

    # --- rpc -----------------------------------------------------------------------------------

    # ``await node.rpc(peer, module, function, args=(), *, timeout=30.0, io=None)``:
    # module:function(args...) on peer through its rex server; see rpc.call.
    # Bound directly (not wrapped) because it is the hot path of everything.
    rpc = _rpc_call
    # ``node.rpc_future(...)``: the same, returning the future at once (no Task per call)
    rpc_future = _rpc_future

    def _deadlines_for(self, loop: asyncio.AbstractEventLoop) -> Deadlines:
        d = self._deadlines
        if d is None or d.loop is not loop:
            d = self._deadlines = Deadlines(loop)
        return d


def _wire_target(shown: Any) -> Any:
    """What a MONITOR_P named: the pid, or the bare name of a ``(name, node)``."""
    return shown[0] if isinstance(shown, tuple) else shown


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
