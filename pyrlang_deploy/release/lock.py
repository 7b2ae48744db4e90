"""The cluster-wide deploy lock: one changing command at a time.

Every changing command (install, rollback, permanent, remove, upload; agent or not)
holds it. On each target node the lock is one process registered as `erldeploy_lock`
(register/2 is atomic on a node), holding who took it in its process dictionary, and
monitoring a mailbox of ours. Why this shape:

- it dies with its holder: a SIGKILLed controller's connection drops, the monitor fires
  `noconnection` and the process ends, so no lock outlives its holder (a paused or
  cut-off holder's is freed when the node's net_ticktime declares it gone);
- no code is loaded for it: the process is an erl_eval fun (stock modules only), so
  `--no-agent` runs take the same lock;
- no `global`: hidden nodes are outside global's view, and the lock must hold on every
  target even when the targets are not connected to each other.

Nodes are taken in sorted order, so two runs over the same nodes meet on the first one
and the later is refused there, before any change; a refusal names the holder. A lock
taken where a guard of an earlier run (its controller gone) still decides waits for
that guard to finish first. The agent's own unload after an orphaned guard takes the
lock for its purge (and skips it when a run holds the lock), so it can never remove the
agent a new run has just loaded.
"""

from __future__ import annotations

import asyncio
import getpass
import os
import socket
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from ..errors import ReleaseError
from ..remote_eval import eval_erlang
from .terms import is_tagged, text

if TYPE_CHECKING:
    from ..cluster import Cluster

NAME = "erldeploy_lock"
GUARD_WAIT_MARGIN = 10.0     # seconds past an orphaned guard's lease we wait for it to end
TRANSIENT_WAIT = 5.0         # seconds we wait out a transient holder (the agent unloading itself)

# Both read a registered process's record from its dictionary, never waiting on it.
_READ = """
Read = fun(Name, Key) ->
    case whereis(Name) of
        undefined -> undefined;
        P -> case erlang:process_info(P, dictionary) of
                 {dictionary, D} -> case lists:keyfind(Key, 1, D) of
                                        {_, V} -> {P, V};
                                        false -> {P, #{}}
                                    end;
                 undefined -> undefined
             end
    end
end,
Connected = fun(P) when is_pid(P) -> lists:member(node(P), [node() | nodes(connected)]);
               (_) -> false
            end,
"""

_ACQUIRE = _READ + """
Caller = self(),
Tag = make_ref(),
Pid = spawn(fun() ->
          case catch register(erldeploy_lock, self()) of
              true ->
                  put('$erldeploy_lock', Info#{owner => Owner}),
                  Mon = erlang:monitor(process, Owner),
                  Caller ! {Tag, locked},
                  receive {'DOWN', Mon, _, _, _} -> ok end;
              _ ->
                  Caller ! {Tag, taken}
          end
      end),
R = receive {Tag, X} -> X after 5000 -> exit(Pid, kill), timeout end,
{R, Pid, Read(erldeploy_lock, '$erldeploy_lock'), Read(erldeploy_guard, '$erldeploy_guard'),
 erlang:monotonic_time(millisecond)}.
"""

_SHOW = _READ + """
case Read(erldeploy_lock, '$erldeploy_lock') of
    undefined -> free;
    {P, I} -> {held, P, I, Connected(maps:get(owner, I, undefined))}
end.
"""

_GUARD = _READ + "{Read(erldeploy_guard, '$erldeploy_guard'), erlang:monotonic_time(millisecond)}."

# Kill the holder only if it is still the one we saw (Pid), so a break never frees a newer lock.
_BREAK = """
case whereis(erldeploy_lock) of
    Pid -> exit(Pid, kill), broken;
    undefined -> already_free;
    _ -> changed
end.
"""


@dataclass(frozen=True)
class Holder:
    """Who holds (or held) the lock on a node."""

    node: str                  # the node whose lock this is
    user: str
    host: str
    os_pid: int
    since: str                 # RFC 3339, UTC
    doing: str
    controller: str            # the holder's own (hidden) node name
    lock_pid: Any = None       # the lock process on `node`
    connected: bool = True     # the holder's node is still connected to `node`

    @classmethod
    def of(cls, node: str, lock_pid: Any, info: Any, connected: bool = True) -> Holder:
        info = info if isinstance(info, dict) else {}

        def get(k: str, default: Any = "?") -> Any:
            v = info.get(k, default)
            return text(v) if isinstance(v, (bytes, list)) else v

        pid = get("os_pid", 0)
        return cls(node, str(get("user")), str(get("host")), pid if isinstance(pid, int) else 0,
                   str(get("since")), str(get("doing")), str(get("controller")), lock_pid, connected)

    def describe(self) -> str:
        return (f"{self.user}@{self.host} (pid {self.os_pid}, node {self.controller}) since {self.since}: "
                f"{self.doing}")

    def known_dead(self) -> bool:
        """Dead for sure: its node no longer connected here, or a process of this host that is gone."""
        if not self.connected:
            return True
        if self.host == socket.gethostname() and self.os_pid > 0:
            try:
                os.kill(self.os_pid, 0)
            except ProcessLookupError:
                return True
            except PermissionError:
                return False
        return False

    def to_json(self) -> dict[str, Any]:
        return {"node": self.node, "user": self.user, "host": self.host, "pid": self.os_pid, "since": self.since,
                "doing": self.doing, "controller": self.controller, "connected": self.connected,
                "known_dead": self.known_dead()}


class LockHeld(ReleaseError):
    """Another run holds the deploy lock: refused before any change."""

    def __init__(self, holder: Holder) -> None:
        super().__init__(f"{holder.node}: the deploy lock is held by {holder.describe()}; nothing was changed "
                         "(see `erldeploy lock status`)", node=holder.node)
        self.holder = holder


def holder_info(local_name: str, doing: str) -> dict[str, Any]:
    """The record a lock carries: who, from where, since when, doing what (no secrets: never argv)."""
    try:
        user = getpass.getuser()
    except Exception:      # no passwd entry (containers)
        user = str(os.getuid())
    return {"user": user.encode(), "host": socket.gethostname().encode(), "os_pid": os.getpid(),
            "since": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ").encode(),
            "doing": doing.encode(), "controller": local_name.encode()}


class DeployLock:
    """The lock on a set of nodes, held by one mailbox of ours (the monitored owner)."""

    def __init__(self, cluster: Cluster, nodes: list[str], doing: str,
                 on_wait: Callable[[str, str], None] | None = None) -> None:
        self.c = cluster
        self.nodes = sorted(dict.fromkeys(nodes))
        self.doing = doing
        self.on_wait = on_wait
        self._owner = None
        self._info: dict[str, Any] | None = None
        self._held: dict[str, Any] = {}      # node -> our lock process

    async def acquire(self) -> None:
        local = self.c.node
        self._owner = local.mailbox()
        info = self._info = holder_info(str(local.name), self.doing)
        guards: dict[str, float] = {}
        try:
            for node in self.nodes:
                state, pid, lock, guard, now = await self._take(node, info)
                if state == "locked":
                    self._held[node] = pid
                    if guard not in ("undefined", None):
                        guards[node] = _lease_left(guard[1], now)
                    continue
                if state == "taken" and isinstance(lock, tuple):
                    raise LockHeld(Holder.of(node, lock[0], lock[1]))
                raise ReleaseError(f"{node}: could not take the deploy lock ({text(state)})", node=node)
            if guards:
                await self._wait_for_guards(guards)
        except BaseException:
            await self.release()
            raise

    async def retake(self, node: str) -> None:
        """Take ``node``'s lock again after it rebooted (a restart upgrade): its lock process
        died with the old emulator. LockHeld if another run took it in between."""
        if self._info is None or node not in self._held:
            return
        state, pid, lock, _, _ = await self._take(node, self._info)
        if state == "locked":
            self._held[node] = pid
            return
        del self._held[node]
        if state == "taken" and isinstance(lock, tuple):
            raise LockHeld(Holder.of(node, lock[0], lock[1]))
        raise ReleaseError(f"{node}: could not take the deploy lock again after its restart ({text(state)})",
                           node=node)

    async def _take(self, node: str, info: dict[str, Any]) -> Any:
        """One node's lock; a transient holder (the agent's own unload, a few ms) is waited for."""
        deadline = time.monotonic() + TRANSIENT_WAIT
        while True:
            r = await eval_erlang(self.c.rpc, node, _ACQUIRE, {"Info": info, "Owner": self._owner.pid})
            lock = r[2]
            transient = r[0] == "taken" and isinstance(lock, tuple) and isinstance(lock[1], dict) \
                and lock[1].get("transient") is True
            if not transient or time.monotonic() > deadline:
                return r
            await asyncio.sleep(0.1)

    async def _wait_for_guards(self, guards: dict[str, float]) -> None:
        """Guards of an earlier run whose controller is gone (we hold the lock, so it is not running):
        each ends at the latest when its lease runs out and its decision is taken."""
        deadline = time.monotonic() + max(guards.values()) + GUARD_WAIT_MARGIN
        for node, left in guards.items():
            if self.on_wait:
                self.on_wait(node, f"waiting for the guard of an earlier run to finish (at most {left:.0f} s)")
        pending = set(guards)
        while pending:
            for node in sorted(pending):
                r = await eval_erlang(self.c.rpc, node, _GUARD)
                if r[0] in ("undefined", None):
                    pending.discard(node)
            if not pending:
                return
            if time.monotonic() > deadline:
                node = sorted(pending)[0]
                raise ReleaseError(f"{node}: a guard of an earlier run is still active; nothing was changed "
                                   "(see `erldeploy agent status`)", node=node)
            await asyncio.sleep(0.2)

    async def release(self) -> None:
        held, self._held = self._held, {}

        async def one(node: str) -> None:
            await self.c.rpc(node, "erlang", "exit", [held[node], _atom("kill")], timeout=5.0)

        if held:
            await self.c.each(one, list(held))    # a node that is gone took its lock with it
        if self._owner is not None:
            self._owner.close()                    # and any stray lock process ends on its DOWN
            self._owner = None


@asynccontextmanager
async def deploy_lock(cluster: Cluster, doing: str, nodes: list[str] | None = None,
                      on_wait: Callable[[str, str], None] | None = None) -> AsyncIterator[DeployLock]:
    """Hold the deploy lock on `nodes` (default: the cluster's members) for the block."""
    lock = DeployLock(cluster, list(cluster.members if nodes is None else nodes), doing, on_wait)
    await lock.acquire()
    try:
        yield lock
    finally:
        await lock.release()


async def lock_status(cluster: Cluster, node: str) -> Holder | None:
    """The holder of the lock on `node`, None when it is free."""
    r = await eval_erlang(cluster.rpc, node, _SHOW)
    if is_tagged(r, "held", 4):
        return Holder.of(node, r[1], r[2], r[3] is True)
    return None


async def break_lock(cluster: Cluster, holder: Holder) -> str:
    """Free the lock `holder` holds on its node: broken | already_free | changed (a newer holder)."""
    if not holder.known_dead():
        raise ReleaseError(f"{holder.node}: the lock holder is not known to be dead ({holder.describe()}); "
                           "a live holder's lock ends with its run, a lost one's when the node notices "
                           "(net_ticktime)", node=holder.node)
    r = await eval_erlang(cluster.rpc, holder.node, _BREAK, {"Pid": holder.lock_pid})
    return text(r)


def _lease_left(guard_info: Any, now_ms: int) -> float:
    """Seconds an earlier run's guard may still hold its node (its lease counts from its verify)."""
    if isinstance(guard_info, dict):
        deadline, lease = guard_info.get("deadline"), guard_info.get("lease_ms")
        if isinstance(deadline, int):
            return max(0.0, (deadline - now_ms) / 1000)
        if isinstance(lease, int):
            return lease / 1000 + 30.0      # still installing or verifying: its lease has not begun
    return 60.0


def _atom(name: str) -> Any:
    from ..term.types import Atom
    return Atom(name)


__all__ = ["DeployLock", "Holder", "LockHeld", "break_lock", "deploy_lock", "lock_status"]
