"""The guarded install on one node, and the watch over the guard's live events.

The guard (agent/erldeploy_guard.erl) checks, installs and verifies, then holds the
node under a lease until commit; it sends events to a mailbox of ours as they happen
(crash reports, a failure just before a restart takes the connection down).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from ...errors import AgentError, ErldeployError, NodeDown, RpcError
from ...term.types import Atom
from ..terms import text
from . import replies
from .replies import CrashReport, GuardEvent, GuardResult

if TYPE_CHECKING:
    from ...erldist.process import Mailbox

EventCb = Callable[[GuardEvent], Any]
SETTLE_WAIT = 5.0       # bound on settle(): the reader task is alive, so it is never reached


class GuardWatch:
    """The mailbox a guard sends its live events to, read by a background task."""

    def __init__(self, mailbox: Mailbox, node: str, on_event: EventCb | None) -> None:
        self.mailbox = mailbox
        self.node = node
        self.on_event = on_event
        self.events: list[GuardEvent] = []
        self._marks: dict[object, asyncio.Event] = {}
        self._task = asyncio.get_running_loop().create_task(self._read())

    async def _read(self) -> None:
        while True:
            try:
                msg = await self.mailbox.receive()
            except ErldeployError:        # closed
                return
            mark = self._marks.pop(msg, None) if isinstance(msg, _Mark) else None
            if mark is not None:
                mark.set()
                continue
            self._take(msg)

    def _take(self, msg: Any) -> None:
        event = replies.event(msg)
        if event is None:
            return
        self.events.append(event)
        if self.on_event:
            try:
                self.on_event(event)
            except Exception:      # a UI callback must not break the install
                pass

    async def settle(self) -> None:
        """Return once every message delivered so far has been read.

        Messages from one node arrive in order on its connection, so the guard's
        events precede the rpc reply (or the loss of the connection) that brought
        us here. A marker put in the mailbox now comes out after all of them."""
        if self._task.done():
            return
        mark = _Mark()
        done = self._marks[mark] = asyncio.Event()
        self.mailbox.deliver(mark)
        try:
            await asyncio.wait_for(done.wait(), SETTLE_WAIT)
        except TimeoutError:
            pass

    def find(self, kind: str) -> GuardEvent | None:
        return next((e for e in self.events if e.kind == kind), None)

    def crashes(self) -> list[CrashReport]:
        return [c for c in (e.crash for e in self.events) if c is not None]

    def close(self) -> None:
        self._task.cancel()
        self.mailbox.close()


class _Mark:
    """A local-only message (never encoded): the settle() barrier."""

    __slots__ = ()


def options(watch: GuardWatch, lease_s: float, verify: Any, expected_apps: Any, install_timeout: float,
            settle_ms: int | None) -> dict[Any, Any]:
    opts: dict[Any, Any] = {
        Atom("lease_ms"): int(lease_s * 1000),
        Atom("controller"): watch.mailbox.pid,
        Atom("verify"): verify_spec(verify),
        Atom("expected_apps"): [(Atom(a), str(v)) for a, v in _pairs(expected_apps)],
        Atom("install_timeout"): int(install_timeout * 1000),
    }
    if settle_ms is not None:
        opts[Atom("settle_ms")] = int(settle_ms)
    return opts


async def run(rpc: Callable[..., Any], watch: GuardWatch, node: str, vsn: str, opts: dict[Any, Any],
              timeout: float) -> GuardResult:
    """guard_install on the node; the result with the watch's events attached."""
    try:
        reply = await rpc(node, "erldeploy_agent", "guard_install", [vsn, opts], timeout=timeout)
    except (NodeDown, RpcError) as e:
        # A crash after the point of no return restarts the node, taking the
        # rpc with it; the guard sent its reason first.
        await watch.settle()
        failed = watch.find("install_failed")
        if failed is None:
            raise AgentError(f"{node}: guarded install of {vsn} lost: {e}", node=node) from None
        res = replies.install_failed(node, vsn, failed.data)
        res.crashes = watch.crashes()
        res.events = list(watch.events)
        return res
    await watch.settle()
    res = replies.guard_result(node, vsn, reply)
    if res is None:
        raise AgentError(f"{node}: unexpected answer from the agent's guarded install: {text(reply)}",
                         node=node)
    res.events = list(watch.events)
    if not res.crashes:           # the node restarted before it could report them
        res.crashes = watch.crashes()
    if not res.ok and not res.root_cause and res.crashes:
        res.root_cause = "; ".join(map(str, res.crashes))
    return res


def verify_spec(verify: Any) -> Any:
    if verify is None:
        return replies.UNDEFINED
    if isinstance(verify, str):
        mod, sep, fun = verify.partition(":")
        if not sep or not mod or not fun:
            raise AgentError(f"verify must be MOD:FUN, got {verify!r}")
        return (Atom(mod), Atom(fun), [])
    if isinstance(verify, tuple) and len(verify) in (2, 3):
        mod, fun, *rest = verify
        return (Atom(str(mod)), Atom(str(fun)), list(rest[0]) if rest else [])
    raise AgentError(f"verify must be MOD:FUN or (mod, fun, args), got {verify!r}")


def _pairs(apps: dict[str, str] | Iterable[tuple[str, str]] | None) -> list[tuple[str, str]]:
    if not apps:
        return []
    if isinstance(apps, dict):
        return list(apps.items())
    return [(str(a), str(v)) for a, v in apps]
