"""What every driver of our hidden node shares: its identity and its signals.

Two drivers carry the node: ``LocalNode`` (node.py, asyncio: many peers, many
calls in flight) and ``BlockingNode`` (blocking.py: one peer, one call at a time,
for CLI commands that cannot pay for asyncio's import). Both are a ``NodeCore``:
one name and creation, one process table (proctable.py, sans-IO), and one
reading of every control message a peer sends, so links, monitors, exits and
io requests mean the same whichever driver reads the socket.

A driver keeps its open connections in ``_conns`` (peer name -> connection with
``closed``, ``peer``, ``exit_payload``, ``send_sender`` and ``send_control``).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable

from ..cookie import read_cookie_file
from ..term.types import Atom, Pid, Reference
from . import control as ctl
from .debuglog import get_logger
from .framing import max_frame_from_env
from .names import is_long_host, own_host, split_node, unique_alive
from .process import LocalProcess
from .proctable import NO_PAYLOAD, Deliver, ExitMsg, ProcessTable

TYPE_CHECKING = False  # typing is not imported at run time: see cli/fastpath.py
if TYPE_CHECKING:
    from typing import Any

log = get_logger(__name__)


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


class NodeCore:
    """A hidden node's identity, process table and signal handling (no I/O of its own).

    ``name``: ``"alive@host"``, or ``"alive"`` (the host part then follows the
    first peer's short/long form), or None for ``erldeploy-<random>``. ``cookie``:
    None reads ``~/.erlang.cookie``. ``max_frame``: the largest frame a peer may
    send (default ``ERLDEPLOY_MAX_FRAME`` or 64 MiB).
    """

    def __init__(self, name: str | None = None, cookie: str | None = None, *, creation: int | None = None,
                 epmd_port: int | None = None, io_sink: Callable[[str], Any] | None = None,
                 max_frame: int | None = None) -> None:
        self._cookie = read_cookie_file() if cookie is None else cookie
        self._host: str | None
        if name and "@" in name:
            self._alive, self._host = split_node(name)
        else:
            self._alive, self._host = name or unique_alive(), None
        # creation 0 means "any incarnation" to some OTP checks; stay clear of it
        self.creation = creation if creation is not None else _random_creation()
        self.epmd_port = epmd_port
        self.io_sink: Callable[[str], Any] = io_sink or _stdout_sink
        # the largest frame a peer may send (and what a compressed term may inflate to)
        self.max_frame = max_frame if max_frame is not None else max_frame_from_env()
        self.table = ProcessTable(self.creation)
        self._conns: dict[str, Any] = {}
        self._self_proc: _Sink | None = None

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

    def process_exited(self, proc: LocalProcess, reason: Any) -> None:
        """``proc`` closed: its monitors fire, its links break (called by LocalProcess.close)."""
        self.apply(self.table.exited(proc, reason))

    def connection(self, peer: str) -> Any:
        """The open connection to ``peer``, or None (never connects)."""
        conn = self._conns.get(peer)
        return None if conn is None or conn.closed else conn

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

    def on_connection_lost(self, conn: Any, reason: str) -> None:
        """Called by the connection once it is lost: our monitors and links on that peer fire."""
        if self._conns.get(conn.peer) is conn:
            del self._conns[conn.peer]
        log.debug("connection to %s lost: %s", conn.peer, reason)
        self.apply(self.table.node_down(conn.peer))

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

    def _try_send_control(self, conn: Any, c: ctl.Control, payload: Any = NO_PAYLOAD) -> None:
        if conn.closed:
            return
        try:
            if payload is NO_PAYLOAD:
                conn.send_control(c)
            else:
                conn.send_control(c, payload)
        except Exception as exc:
            log.debug("could not send %s to %s: %s", type(c).__name__, conn.peer, exc)

    # --- incoming signals ---------------------------------------------------------------------

    def on_control(self, conn: Any, c: ctl.Control, payload: Any) -> None:
        """Called by the connection for each control message other than SEND."""
        handler = _HANDLERS.get(type(c))
        if handler is not None:
            handler(self, conn, c, payload)

    def _on_send(self, conn: Any, c: Any, msg: Any) -> None:
        proc = self.table.lookup(c.to_pid)
        if proc is not None:
            proc.deliver(msg)

    def _on_reg_send(self, conn: Any, c: Any, msg: Any) -> None:
        proc = self.table.names.get(c.to_name)
        if proc is not None:
            proc.deliver(msg)
        else:
            log.debug("%s sent to unregistered name %s", conn.peer, c.to_name)

    def _on_alias_send(self, conn: Any, c: Any, msg: Any) -> None:
        proc = self.table.aliases.get(c.alias)
        if proc is not None:
            proc.deliver(msg)

    def _on_altact_sig(self, conn: Any, c: ctl.AltactSigSend, payload: Any) -> None:
        # OTP 28's op 37: handled as the older op of the same meaning
        legacy = c.legacy()
        if legacy is not None:
            self.on_control(conn, legacy, payload)
            return
        proc = self.table.aliases.get(c.to)  # exit/2 to an alias
        if proc is not None:
            proc.exit_signal(c.from_pid, payload)

    def _on_link(self, conn: Any, c: ctl.Link, _: Any) -> None:
        self.apply(self.table.peer_link(c.from_pid, c.to_pid))

    def _on_unlink(self, conn: Any, c: Any, _: Any) -> None:
        self.table.peer_unlink(c.from_pid, c.to_pid)
        if isinstance(c, ctl.UnlinkId):
            # must reach the peer before any later signal from us: write it now
            self._try_send_control(conn, ctl.UnlinkIdAck(c.id, c.to_pid, c.from_pid))

    def _on_exit(self, conn: Any, c: Any, payload: Any) -> None:
        reason = payload if c.PAYLOAD else c.reason
        link = isinstance(c, (ctl.Exit, ctl.ExitTT, ctl.PayloadExit, ctl.PayloadExitTT))
        self.apply(self.table.peer_exit(c.from_pid, c.to_pid, reason, link=link))

    def _on_monitor(self, conn: Any, c: ctl.MonitorP, _: Any) -> None:
        self.apply(self.table.peer_monitor(c.from_pid, c.to_proc, c.ref))

    def _on_demonitor(self, conn: Any, c: ctl.DemonitorP, _: Any) -> None:
        self.table.peer_demonitor(c.to_proc, c.ref)

    def _on_monitor_exit(self, conn: Any, c: Any, payload: Any) -> None:
        reason = payload if c.PAYLOAD else c.reason
        self.apply(self.table.peer_down(c.ref, reason))

def _stdout_sink(text: str) -> None:
    sys.stdout.write(text)
    sys.stdout.flush()


_HANDLERS: dict[type, Callable[..., None]] = {
    ctl.Send: NodeCore._on_send,
    ctl.SendTT: NodeCore._on_send,
    ctl.SendSender: NodeCore._on_send,
    ctl.SendSenderTT: NodeCore._on_send,
    ctl.RegSend: NodeCore._on_reg_send,
    ctl.RegSendTT: NodeCore._on_reg_send,
    ctl.AliasSend: NodeCore._on_alias_send,
    ctl.AliasSendTT: NodeCore._on_alias_send,
    ctl.AltactSigSend: NodeCore._on_altact_sig,
    ctl.Link: NodeCore._on_link,
    ctl.Unlink: NodeCore._on_unlink,
    ctl.UnlinkId: NodeCore._on_unlink,
    ctl.Exit: NodeCore._on_exit,
    ctl.ExitTT: NodeCore._on_exit,
    ctl.PayloadExit: NodeCore._on_exit,
    ctl.PayloadExitTT: NodeCore._on_exit,
    ctl.Exit2: NodeCore._on_exit,
    ctl.Exit2TT: NodeCore._on_exit,
    ctl.PayloadExit2: NodeCore._on_exit,
    ctl.PayloadExit2TT: NodeCore._on_exit,
    ctl.MonitorP: NodeCore._on_monitor,
    ctl.DemonitorP: NodeCore._on_demonitor,
    ctl.MonitorPExit: NodeCore._on_monitor_exit,
    ctl.PayloadMonitorPExit: NodeCore._on_monitor_exit,
}
