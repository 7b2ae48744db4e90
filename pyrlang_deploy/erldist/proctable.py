"""The process table of our hidden node, sans-IO.

It mints pids and references, keeps the registries (pids, RPC calls by encoded
pid, names, aliases) and the link and monitor relations, and decides what each
event means. It never delivers or writes anything itself: every method that
changes a relation returns the effects to carry out, in order:

  Deliver(proc, msg)            put ``msg`` in one of our processes
  ExitMsg(proc, from_pid, r)    an exit signal to one of our processes (we trap exits)
  PeerExit / PeerDown /         a control message for the node named ``.node``;
  PeerMonitor / PeerDemonitor   ``.control(exit_payload)`` builds it for that connection

``LocalNode`` (node.py) is the asyncio shell that carries them out. So links and
monitors are tested here with plain objects (tests/test_erldist_proctable.py),
with no node or socket.

Processes are whatever the node puts in: objects with a ``pid`` (Mailbox,
RpcCall, ...). The relations are held here, keyed by pid, not on the processes.

Hot path (one RPC): ``new_wire_pid``, ``new_wire_ref``, ``calls`` (the dict the
connection reads for every reply frame) and ``end_call``; none of them builds a
Pid or Reference object.
"""

from __future__ import annotations

import os
import struct

from ..term.types import Atom, Pid, Reference
from . import control as ctl
from . import wire

TYPE_CHECKING = False  # typing is not imported at run time: see cli/fastpath.py
if TYPE_CHECKING:
    from typing import Any, Protocol

    class Proc(Protocol):
        """What the table needs of a process: its pid."""

        @property
        def pid(self) -> Pid: ...

DOWN = Atom("DOWN")
PROCESS = Atom("process")
NORMAL = Atom("normal")
NOPROC = Atom("noproc")
NOCONNECTION = Atom("noconnection")

_III = struct.Struct(">III")
_U32 = struct.Struct(">I")
PID_ID_LIMIT = 1 << 15  # erl_interface's pid number width; every OTP accepts it
PID_SERIAL_LIMIT = 1 << 13
REF_ID0_LIMIT = 1 << 18  # the first word of a reference is 18 bits on the node


# --- effects -----------------------------------------------------------------------------
# Plain slotted classes (not dataclasses): cheap to import, cheap to build.


class Deliver:
    __slots__ = ("to", "msg")

    def __init__(self, to: Any, msg: Any) -> None:
        self.to, self.msg = to, msg

    def __repr__(self) -> str:
        return f"Deliver({self.to!r}, {self.msg!r})"


class ExitMsg:
    __slots__ = ("to", "from_pid", "reason")

    def __init__(self, to: Any, from_pid: Pid, reason: Any) -> None:
        self.to, self.from_pid, self.reason = to, from_pid, reason

    def __repr__(self) -> str:
        return f"ExitMsg({self.to!r}, {self.from_pid!r}, {self.reason!r})"


class PeerSignal:
    """A control message for the peer ``node``."""

    __slots__ = ("node",)
    node: str

    def control(self, exit_payload: bool) -> tuple[ctl.Control, Any]:
        """The control message and its payload term (``NO_PAYLOAD`` if none)."""
        raise NotImplementedError

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and all(
            getattr(self, s) == getattr(other, s) for s in self.__slots__ + PeerSignal.__slots__)

    def __repr__(self) -> str:
        inner = ", ".join(f"{s}={getattr(self, s)!r}" for s in PeerSignal.__slots__ + self.__slots__)
        return f"{type(self).__name__}({inner})"


NO_PAYLOAD = object()


class PeerExit(PeerSignal):
    """The EXIT of a broken link, from our ``from_pid`` to their ``to``."""

    __slots__ = ("from_pid", "to", "reason")

    def __init__(self, from_pid: Pid, to: Pid, reason: Any) -> None:
        self.node, self.from_pid, self.to, self.reason = str(to.node), from_pid, to, reason

    def control(self, exit_payload: bool) -> tuple[ctl.Control, Any]:
        if exit_payload:
            return ctl.PayloadExit(self.from_pid, self.to), self.reason
        return ctl.Exit(self.from_pid, self.to, self.reason), NO_PAYLOAD


class PeerDown(PeerSignal):
    """MONITOR_P_EXIT: our ``target`` (pid or name) that ``watcher`` monitored is gone."""

    __slots__ = ("target", "watcher", "ref", "reason")

    def __init__(self, target: Pid | Atom, watcher: Pid, ref: Reference, reason: Any) -> None:
        self.node = str(watcher.node)
        self.target, self.watcher, self.ref, self.reason = target, watcher, ref, reason

    def control(self, exit_payload: bool) -> tuple[ctl.Control, Any]:
        if exit_payload:
            return ctl.PayloadMonitorPExit(self.target, self.watcher, self.ref), self.reason
        return ctl.MonitorPExit(self.target, self.watcher, self.ref, self.reason), NO_PAYLOAD


class PeerMonitor(PeerSignal):
    __slots__ = ("from_pid", "target", "ref")

    def __init__(self, node: str, from_pid: Pid, target: Pid | Atom, ref: Reference) -> None:
        self.node, self.from_pid, self.target, self.ref = node, from_pid, target, ref

    def control(self, exit_payload: bool) -> tuple[ctl.Control, Any]:
        return ctl.MonitorP(self.from_pid, self.target, self.ref), NO_PAYLOAD


class PeerDemonitor(PeerSignal):
    __slots__ = ("from_pid", "target", "ref")

    def __init__(self, node: str, from_pid: Pid, target: Pid | Atom, ref: Reference) -> None:
        self.node, self.from_pid, self.target, self.ref = node, from_pid, target, ref

    def control(self, exit_payload: bool) -> tuple[ctl.Control, Any]:
        return ctl.DemonitorP(self.from_pid, self.target, self.ref), NO_PAYLOAD


_NONE: tuple = ()


class _Held:
    """A monitor one of our processes holds: on whom, and how DOWN will show it."""

    __slots__ = ("proc", "node", "wire", "shown")

    def __init__(self, proc: Any, node: str, wire: Pid | Atom, shown: Any) -> None:
        self.proc, self.node, self.wire, self.shown = proc, node, wire, shown


class ProcessTable:
    """Pids, names, aliases, links and monitors of one node incarnation."""

    def __init__(self, creation: int) -> None:
        self.creation = creation
        self.node: Atom | None = None  # set once by set_node (the name can wait for the first peer)
        self._pid_prefix = b""
        self._ref_prefix = b""
        self._pid_id = 0
        self._pid_serial = 0
        self._ref_count = 0
        self._ref_salt = int.from_bytes(os.urandom(4), "big")
        self.procs: dict[Pid, Any] = {}
        # RPC calls in flight, by encoded pid: read for every reply frame (hot path)
        self.calls: dict[bytes, Any] = {}
        self.names: dict[str, Any] = {}
        self.aliases: dict[Reference, Any] = {}
        # our pid -> {ref: (watcher pid, target as monitored: our pid or our name)}
        self._monitored: dict[Pid, dict[Reference, tuple[Pid, Pid | Atom]]] = {}
        self._links: dict[Pid, set[Pid]] = {}  # our pid -> the pids linked to it
        self._held: dict[Reference, _Held] = {}  # monitors our processes hold
        self._held_by: dict[Pid, set[Reference]] = {}

    # --- identity ---------------------------------------------------------------------

    def set_node(self, node: Atom) -> None:
        self.node = node
        # encoded prefixes of our pids and refs, for the RPC fast path
        self._pid_prefix = b"X" + wire.atom(node)
        self._ref_prefix = b"Z\x00\x03" + wire.atom(node) + _U32.pack(self.creation)

    def new_pid(self) -> Pid:
        (n, serial), _ = self.new_wire_pid()
        return Pid(self.node, n, serial, self.creation)

    def new_wire_pid(self) -> tuple[tuple[int, int], bytes]:
        """(id, serial) of a new pid and its encoding (NEW_PID_EXT); no Pid object."""
        n = self._pid_id = self._pid_id + 1
        if n >= PID_ID_LIMIT:
            n = self._pid_id = 1
            self._pid_serial = (self._pid_serial + 1) % PID_SERIAL_LIMIT
        return (n, self._pid_serial), self._pid_prefix + _III.pack(n, self._pid_serial, self.creation)

    def new_wire_ref(self) -> tuple[tuple[int, int, int], bytes]:
        """The ids of a new reference and its encoding (NEWER_REFERENCE_EXT)."""
        n = self._ref_count = self._ref_count + 1
        ids = (n % REF_ID0_LIMIT, (n >> 18) & 0xFFFFFFFF, self._ref_salt)
        return ids, self._ref_prefix + _III.pack(*ids)

    def make_ref(self) -> Reference:
        return Reference(self.node, self.creation, self.new_wire_ref()[0])

    def wire_pid(self, pid: Pid) -> bytes:
        return self._pid_prefix + _III.pack(pid.id, pid.serial, pid.creation)

    # --- registries -------------------------------------------------------------------

    def add(self, proc: Any) -> None:
        self.procs[proc.pid] = proc

    def lookup(self, pid: Any) -> Any:
        """Our process with this pid (a mailbox..., or an RPC in flight), or None."""
        proc = self.procs.get(pid)
        if proc is None and self.calls and type(pid) is Pid and pid.node == self.node:
            proc = self.calls.get(self._pid_prefix + _III.pack(pid.id, pid.serial, pid.creation))
        return proc

    def by_target(self, target: Any) -> Any:
        """Our process named by a pid or a registered name (atom or str)."""
        return self.names.get(target) if isinstance(target, str) else self.lookup(target)

    def register(self, name: str, proc: Any) -> bool:
        """False if ``name`` belongs to another process."""
        other = self.names.get(name)
        if other is not None and other is not proc:
            return False
        self.names[name] = proc
        return True

    def unregister(self, name: str) -> Any:
        return self.names.pop(name, None)

    def name_of(self, proc: Any) -> Atom | None:
        for name, p in self.names.items():
            if p is proc:
                return Atom(name)
        return None

    def alias(self, proc: Any) -> Reference:
        ref = self.make_ref()
        self.aliases[ref] = proc
        return ref

    # --- relations, read side ---------------------------------------------------------

    def links_of(self, pid: Pid) -> frozenset[Pid]:
        return frozenset(self._links.get(pid, ()))

    def monitors_of(self, pid: Pid) -> dict[Reference, tuple[Pid, Pid | Atom]]:
        """Who monitors our ``pid``: ref -> (watcher, target as monitored)."""
        return dict(self._monitored.get(pid, {}))

    def held_by(self, pid: Pid) -> frozenset[Reference]:
        return frozenset(self._held_by.get(pid, ()))

    # --- our processes ending -----------------------------------------------------------

    def end_call(self, wire_pid: bytes, proc: Any) -> tuple | list:
        """An RPC call's pid is done (hot path: usually one dict deletion)."""
        del self.calls[wire_pid]
        if self._monitored or self._links or self._held_by:
            return self.exited(proc, NORMAL)
        return _NONE

    def exited(self, proc: Any, reason: Any) -> list:
        """``proc`` left the node: its monitors fire, links break, its own monitors go."""
        pid = proc.pid
        if self.procs.get(pid) is proc:
            del self.procs[pid]
        for name in [n for n, p in self.names.items() if p is proc]:
            del self.names[name]
        if self.aliases:
            for ref in [r for r, p in self.aliases.items() if p is proc]:
                del self.aliases[ref]
        out: list = []
        for ref, (watcher, target) in self._monitored.pop(pid, {}).items():
            out += self._down(watcher, target, ref, reason)
        for other in self._links.pop(pid, ()):
            self._unlink_one(other, pid)
            out += self._exit_to(pid, other, reason)
        for ref in self._held_by.pop(pid, ()):
            held = self._held.pop(ref)
            if held.node == self.node:
                self._forget_monitor(held.wire, ref)
            else:
                out.append(PeerDemonitor(held.node, pid, held.wire, ref))
        return out

    def _down(self, watcher: Pid, target: Pid | Atom, ref: Reference, reason: Any) -> list:
        """Tell ``watcher`` that the process it monitored as ``target`` is gone."""
        if watcher.node == self.node:
            held = self._held.pop(ref, None)
            if held is None:
                return []
            self._held_by_discard(watcher, ref)
            return [Deliver(held.proc, (DOWN, ref, PROCESS, held.shown, reason))]
        return [PeerDown(target, watcher, ref, reason)]

    def _exit_to(self, from_pid: Pid, to: Pid, reason: Any) -> list:
        """The EXIT signal of a broken link from our ``from_pid`` to ``to``."""
        if to.node == self.node:
            proc = self.lookup(to)
            return [] if proc is None else [ExitMsg(proc, from_pid, reason)]
        return [PeerExit(from_pid, to, reason)]

    # --- links ------------------------------------------------------------------------------

    def link(self, ours: Pid, other: Pid) -> None:
        self._links.setdefault(ours, set()).add(other)

    def _unlink_one(self, ours: Pid, other: Pid) -> bool:
        links = self._links.get(ours)
        if links is None or other not in links:
            return False
        links.discard(other)
        if not links:
            del self._links[ours]
        return True

    def peer_link(self, from_pid: Pid, to: Pid) -> list:
        """LINK from a remote process to our ``to``; EXIT noproc if there is no such process."""
        if self.lookup(to) is None:
            return self._exit_to(to, from_pid, NOPROC)
        self.link(to, from_pid)
        return []

    def peer_unlink(self, from_pid: Pid, to: Pid) -> None:
        self._unlink_one(to, from_pid)

    def peer_exit(self, from_pid: Pid, to: Pid, reason: Any, *, link: bool) -> list:
        """An exit signal for our ``to``: a broken link (``link``) or exit/2."""
        proc = self.lookup(to)
        if proc is None:
            return []
        if link and not self._unlink_one(to, from_pid):
            return []  # a link we already dropped
        return [ExitMsg(proc, from_pid, reason)]

    # --- monitors ----------------------------------------------------------------------------

    def monitor(self, proc: Any, node: str, target: Pid | Atom, shown: Any) -> tuple[Reference, list]:
        """Our ``proc`` monitors ``target`` (a pid, or a name registered on ``node``).

        ``shown`` is what DOWN will carry (the pid, or ``{Name, Node}``).
        """
        ref = self.make_ref()
        if node == self.node:
            other = self.by_target(target)
            if other is None:
                return ref, [Deliver(proc, (DOWN, ref, PROCESS, shown, NOPROC))]
            self._hold(proc, ref, node, target, shown)
            self._monitored.setdefault(other.pid, {})[ref] = (proc.pid, target)
            return ref, []
        self._hold(proc, ref, node, target, shown)
        return ref, [PeerMonitor(node, proc.pid, target, ref)]

    def _hold(self, proc: Any, ref: Reference, node: str, target: Any, shown: Any) -> None:
        self._held[ref] = _Held(proc, node, target, shown)
        self._held_by.setdefault(proc.pid, set()).add(ref)

    def _held_by_discard(self, pid: Pid, ref: Reference) -> None:
        refs = self._held_by.get(pid)
        if refs is not None:
            refs.discard(ref)
            if not refs:
                del self._held_by[pid]

    def _forget_monitor(self, target: Any, ref: Reference) -> None:
        other = self.by_target(target)
        if other is None:
            return
        watchers = self._monitored.get(other.pid)
        if watchers is not None:
            watchers.pop(ref, None)
            if not watchers:
                del self._monitored[other.pid]

    def demonitor(self, proc: Any, ref: Reference) -> list:
        held = self._held.get(ref)
        if held is None or held.proc is not proc:
            return []
        del self._held[ref]
        self._held_by_discard(proc.pid, ref)
        if held.node == self.node:
            self._forget_monitor(held.wire, ref)
            return []
        return [PeerDemonitor(held.node, proc.pid, held.wire, ref)]

    def peer_monitor(self, from_pid: Pid, target: Pid | Atom, ref: Reference) -> list:
        """MONITOR_P from a remote process; DOWN noproc at once if there is no such process."""
        proc = self.by_target(target)
        if proc is None:
            return [PeerDown(target, from_pid, ref, NOPROC)]
        self._monitored.setdefault(proc.pid, {})[ref] = (from_pid, target)
        return []

    def peer_demonitor(self, target: Pid | Atom, ref: Reference) -> None:
        self._forget_monitor(target, ref)

    def peer_down(self, ref: Reference, reason: Any) -> list:
        """MONITOR_P_EXIT: a remote process we monitored is gone."""
        held = self._held.pop(ref, None)
        if held is None:
            return []
        self._held_by_discard(held.proc.pid, ref)
        return [Deliver(held.proc, (DOWN, ref, PROCESS, held.shown, reason))]

    # --- a peer node gone ---------------------------------------------------------------------

    def node_down(self, peer: str) -> list:
        """The connection to ``peer`` is lost: what that means for every relation."""
        out: list = []
        for ref in [r for r, h in self._held.items() if h.node == peer]:
            held = self._held.pop(ref)
            self._held_by_discard(held.proc.pid, ref)
            out.append(Deliver(held.proc, (DOWN, ref, PROCESS, held.shown, NOCONNECTION)))
        for pid in list(self._monitored):
            watchers = self._monitored[pid]
            for ref in [r for r, (w, _) in watchers.items() if w.node == peer]:
                del watchers[ref]
            if not watchers:
                del self._monitored[pid]
        for ours in list(self._links):
            for other in [p for p in self._links[ours] if p.node == peer]:
                self._unlink_one(ours, other)
                proc = self.lookup(ours)
                if proc is not None:
                    out.append(ExitMsg(proc, other, NOCONNECTION))
        return out
