"""The sans-IO process table: links, monitors, exits and lost peers, decided
without any node or socket (the effects it returns are what LocalNode carries out)."""

from __future__ import annotations

from pyrlang_deploy.erldist import control as ctl
from pyrlang_deploy.erldist.proctable import (
    NO_PAYLOAD,
    PID_ID_LIMIT,
    Deliver,
    ExitMsg,
    PeerDemonitor,
    PeerDown,
    PeerExit,
    PeerMonitor,
    ProcessTable,
)
from pyrlang_deploy.term import Atom, Pid, Reference

ME = Atom("me@host")
PEER = "peer@host"
DOWN, PROCESS = Atom("DOWN"), Atom("process")


class P:
    """A stand-in process: the table only needs its pid."""

    def __init__(self, pid: Pid) -> None:
        self.pid = pid

    def __repr__(self) -> str:
        return f"P({self.pid.id})"


def table() -> ProcessTable:
    t = ProcessTable(creation=7)
    t.set_node(ME)
    return t


def spawn(t: ProcessTable) -> P:
    p = P(t.new_pid())
    t.add(p)
    return p


def remote(n: int, node: str = PEER) -> Pid:
    return Pid(Atom(node), n, 0, 1)


def test_pids_and_refs_are_ours_and_unique():
    t = table()
    a, b = t.new_pid(), t.new_pid()
    assert a != b and a.node == ME and a.creation == 7
    (ids, wire_pid) = t.new_wire_pid()
    assert wire_pid == t.wire_pid(Pid(ME, ids[0], ids[1], 7))
    r1, r2 = t.make_ref(), t.make_ref()
    assert r1 != r2 and r1.node == ME and len(r1.ids) == 3
    t._pid_id = PID_ID_LIMIT - 1  # the id wraps and the serial moves on
    ids, _ = t.new_wire_pid()
    assert ids == (1, 1)


def test_registry_and_calls_lookup():
    t = table()
    p = spawn(t)
    assert t.lookup(p.pid) is p
    assert t.register("inbox", p) and not t.register("inbox", spawn(t))
    assert t.by_target(Atom("inbox")) is p and t.name_of(p) == "inbox"
    ids, wpid = t.new_wire_pid()
    call = P(Pid(ME, ids[0], ids[1], 7))
    t.calls[wpid] = call
    assert t.lookup(call.pid) is call  # found by its encoding, no Pid kept for it
    assert t.end_call(wpid, call) == () and t.lookup(call.pid) is None
    assert t.exited(p, Atom("normal")) == [] and t.by_target("inbox") is None


def test_remote_link_then_our_exit_sends_exit():
    t = table()
    p, them = spawn(t), remote(1)
    assert t.peer_link(them, p.pid) == []
    assert t.links_of(p.pid) == {them}
    [e] = t.exited(p, Atom("bye"))
    assert e == PeerExit(p.pid, them, Atom("bye")) and e.node == PEER
    assert e.control(True) == (ctl.PayloadExit(p.pid, them), Atom("bye"))
    assert e.control(False) == (ctl.Exit(p.pid, them, Atom("bye")), NO_PAYLOAD)
    assert t.links_of(p.pid) == frozenset()


def test_link_to_a_missing_process_is_exit_noproc():
    t = table()
    ghost = Pid(ME, 999, 0, 7)
    assert t.peer_link(remote(1), ghost) == [PeerExit(ghost, remote(1), Atom("noproc"))]


def test_exit_signals_from_the_peer():
    t = table()
    p, them = spawn(t), remote(1)
    # a broken link we no longer hold is ignored; exit/2 always arrives
    assert t.peer_exit(them, p.pid, Atom("x"), link=True) == []
    [e] = t.peer_exit(them, p.pid, Atom("kill"), link=False)
    assert type(e) is ExitMsg and (e.to, e.from_pid, e.reason) == (p, them, Atom("kill"))
    t.peer_link(them, p.pid)
    [e] = t.peer_exit(them, p.pid, Atom("x"), link=True)
    assert type(e) is ExitMsg and not t.links_of(p.pid)
    t.peer_link(them, p.pid)
    t.peer_unlink(them, p.pid)
    assert not t.links_of(p.pid) and t.exited(p, Atom("normal")) == []


def test_local_links_deliver_exit_messages():
    t = table()
    a, b = spawn(t), spawn(t)
    t.link(a.pid, b.pid)
    t.link(b.pid, a.pid)
    [e] = t.exited(a, Atom("boom"))
    assert type(e) is ExitMsg and (e.to, e.from_pid, e.reason) == (b, a.pid, Atom("boom"))
    assert not t.links_of(b.pid)


def test_remote_monitor_of_our_process_and_of_our_name():
    t = table()
    p = spawn(t)
    t.register("svc", p)
    r1, r2 = Reference(Atom(PEER), 1, (1, 2, 3)), Reference(Atom(PEER), 1, (4, 5, 6))
    assert t.peer_monitor(remote(1), p.pid, r1) == []
    assert t.peer_monitor(remote(2), Atom("svc"), r2) == []
    assert set(t.monitors_of(p.pid)) == {r1, r2}
    effects = t.exited(p, Atom("shutdown"))
    assert effects == [PeerDown(p.pid, remote(1), r1, Atom("shutdown")),
                       PeerDown(Atom("svc"), remote(2), r2, Atom("shutdown"))]
    assert effects[0].control(True)[0] == ctl.PayloadMonitorPExit(p.pid, remote(1), r1)
    assert effects[1].control(False) == (ctl.MonitorPExit(Atom("svc"), remote(2), r2, Atom("shutdown")),
                                         NO_PAYLOAD)


def test_remote_monitor_of_nothing_is_down_noproc_and_demonitor_forgets():
    t = table()
    p = spawn(t)
    r = Reference(Atom(PEER), 1, (1, 2, 3))
    assert t.peer_monitor(remote(1), Atom("nobody"), r) == [PeerDown(Atom("nobody"), remote(1), r, Atom("noproc"))]
    t.peer_monitor(remote(1), p.pid, r)
    t.peer_demonitor(p.pid, r)
    assert t.monitors_of(p.pid) == {} and t.exited(p, Atom("normal")) == []


def test_our_monitor_on_a_remote_process():
    t = table()
    p, them = spawn(t), remote(5)
    ref, [e] = t.monitor(p, PEER, them, them)
    assert e == PeerMonitor(PEER, p.pid, them, ref) and e.control(True)[0] == ctl.MonitorP(p.pid, them, ref)
    assert t.held_by(p.pid) == {ref}
    # the peer reports the exit: DOWN as a message, the monitor is gone
    [d] = t.peer_down(ref, Atom("normal"))
    assert type(d) is Deliver and d.to is p and d.msg == (DOWN, ref, PROCESS, them, Atom("normal"))
    assert t.peer_down(ref, Atom("normal")) == [] and not t.held_by(p.pid)
    # demonitor tells the peer; closing the watcher demonitors what it still holds
    ref2, _ = t.monitor(p, PEER, Atom("reg"), (Atom("reg"), Atom(PEER)))
    assert t.demonitor(p, ref2) == [PeerDemonitor(PEER, p.pid, Atom("reg"), ref2)]
    assert t.demonitor(p, ref2) == []
    ref3, _ = t.monitor(p, PEER, them, them)
    assert t.exited(p, Atom("normal")) == [PeerDemonitor(PEER, p.pid, them, ref3)]


def test_local_monitor_fires_down_and_watcher_exit_cleans_up():
    t = table()
    watcher, target = spawn(t), spawn(t)
    ref, effects = t.monitor(watcher, str(ME), target.pid, target.pid)
    assert effects == [] and set(t.monitors_of(target.pid)) == {ref}
    [d] = t.exited(target, Atom("done"))
    assert d.to is watcher and d.msg == (DOWN, ref, PROCESS, target.pid, Atom("done"))
    assert not t.held_by(watcher.pid)
    # a monitor on a name that nobody has: DOWN noproc at once
    ref, [d] = t.monitor(watcher, str(ME), Atom("none"), (Atom("none"), ME))
    assert d.msg == (DOWN, ref, PROCESS, (Atom("none"), ME), Atom("noproc"))
    # the watcher leaves first: the target no longer carries its monitor
    other = spawn(t)
    t.monitor(watcher, str(ME), other.pid, other.pid)
    assert t.exited(watcher, Atom("normal")) == []
    assert t.monitors_of(other.pid) == {} and t.exited(other, Atom("normal")) == []


def test_a_lost_peer_fires_our_monitors_and_breaks_links():
    t = table()
    p, q = spawn(t), spawn(t)
    ref, _ = t.monitor(p, PEER, remote(1), remote(1))
    ref_other, _ = t.monitor(p, "other@host", remote(1, "other@host"), remote(1, "other@host"))
    t.peer_link(remote(2), q.pid)
    t.peer_monitor(remote(3), q.pid, Reference(Atom(PEER), 1, (9, 9, 9)))
    effects = t.node_down(PEER)
    assert len(effects) == 2
    down = next(e for e in effects if type(e) is Deliver)
    assert down.to is p and down.msg == (DOWN, ref, PROCESS, remote(1), Atom("noconnection"))
    exit_ = next(e for e in effects if type(e) is ExitMsg)
    assert (exit_.to, exit_.from_pid, exit_.reason) == (q, remote(2), Atom("noconnection"))
    assert t.monitors_of(q.pid) == {} and not t.links_of(q.pid)
    assert t.held_by(p.pid) == {ref_other}  # monitors on other nodes stay
    assert t.node_down(PEER) == []


def test_a_call_with_a_monitor_on_it_reports_when_it_ends():
    t = table()
    ids, wpid = t.new_wire_pid()
    call = P(Pid(ME, ids[0], ids[1], 7))
    t.calls[wpid] = call
    r = Reference(Atom(PEER), 1, (1, 1, 1))
    assert t.peer_monitor(remote(1), call.pid, r) == []  # found through the calls table
    assert t.end_call(wpid, call) == [PeerDown(call.pid, remote(1), r, Atom("normal"))]


def test_aliases_go_with_their_process():
    t = table()
    p = spawn(t)
    ref = t.alias(p)
    assert t.aliases[ref] is p
    t.exited(p, Atom("normal"))
    assert ref not in t.aliases


def test_the_node_is_reached_only_through_its_documented_interface():
    """rpc, connection, process and io_server use LocalNode's hot-path interface, not its privates."""
    import re
    from pathlib import Path

    import pyrlang_deploy.erldist as pkg

    here = Path(pkg.__file__).parent
    for name in ("rpc.py", "connection.py", "process.py", "io_server.py"):
        text = (here / name).read_text()
        assert not re.findall(r"\bnode\._[a-z]\w*", text), name
