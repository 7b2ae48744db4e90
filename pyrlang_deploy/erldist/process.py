"""Things on our node that own a pid: the base class and the user-facing Mailbox.

A remote process sees each of them as an ordinary Erlang process: it can send to
it, monitor it (and gets MONITOR_P_EXIT when it closes) and link to it. Our side
never dies from a signal: exit signals arrive as ``('EXIT', From, Reason)``
messages, like a process that traps exits.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

from ..errors import MailboxClosed, NodeDown, ReceiveTimeout
from ..term.types import Atom, Pid, Reference
from .debuglog import get_logger
from .proctable import DOWN, NORMAL, PROCESS  # noqa: F401 (DOWN, PROCESS: re-exported)

TYPE_CHECKING = False  # typing is not imported at run time: see cli/fastpath.py
if TYPE_CHECKING:
    import asyncio
    from typing import Any

    from .node import LocalNode

log = get_logger(__name__)

EXIT = Atom("EXIT")


class LocalProcess:
    """A pid on our node. Subclasses decide what a delivered message means.

    The node's process table (proctable.py) holds its name, links and monitors;
    this object is the pid's behaviour. ``pid`` may be None at construction for
    a subclass that mints it on first use (``_make_pid``): an RPC call never
    needs a Pid object unless something asks.
    """

    __slots__ = ("node", "_pid", "closed")

    def __init__(self, node: LocalNode, pid: Pid | None) -> None:
        self.node = node
        self._pid = pid
        self.closed = False

    @property
    def pid(self) -> Pid:
        pid = self._pid
        if pid is None:
            pid = self._pid = self._make_pid()
        return pid

    def _make_pid(self) -> Pid:
        raise NotImplementedError

    @property
    def links(self) -> frozenset[Pid]:
        """The pids linked to this one."""
        return self.node.table.links_of(self.pid)

    def deliver(self, msg: Any) -> None:
        raise NotImplementedError

    def exit_signal(self, from_pid: Pid, reason: Any) -> None:
        """An exit signal (broken link or exit/2): we trap exits, so it is a message."""
        self.deliver((EXIT, from_pid, reason))

    def close(self, reason: Any = NORMAL) -> None:
        """Leave the node: tell remote monitors and linked processes, free the pid."""
        if self.closed:
            return
        self.closed = True
        self.node.process_exited(self, reason)


class Mailbox(LocalProcess):
    """A pid with a message queue and selective receive.

    Create with ``node.mailbox()``; use as ``async with node.mailbox() as mb``.
    """

    __slots__ = ("_queue", "_waiters")

    def __init__(self, node: LocalNode, pid: Pid) -> None:
        super().__init__(node, pid)
        self._queue: deque[Any] = deque()
        self._waiters: list[tuple[Callable[[Any], bool] | None, asyncio.Future]] = []

    def __repr__(self) -> str:
        return f"<Mailbox {self.pid}{' closed' if self.closed else ''}>"

    async def __aenter__(self) -> Mailbox:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()

    def __len__(self) -> int:
        return len(self._queue)

    # --- receiving --------------------------------------------------------------

    def deliver(self, msg: Any) -> None:
        if self.closed:
            return
        for i, (match, fut) in enumerate(self._waiters):
            if fut.done():
                continue
            if match is None or _matches(match, msg):
                del self._waiters[i]
                fut.set_result(msg)
                return
        self._queue.append(msg)

    def receive_nowait(self, match: Callable[[Any], bool] | None = None) -> Any:
        """The oldest queued message accepted by ``match``; ReceiveTimeout if none."""
        found, msg = self._take(match)
        if not found:
            raise ReceiveTimeout(f"no matching message queued at {self.pid}")
        return msg

    async def receive(self, match: Callable[[Any], bool] | None = None, timeout: float | None = None,
                      *, peer: str | None = None) -> Any:
        """Selective receive: the oldest message ``match`` accepts (any if None).

        Messages it rejects stay queued in order for later receives. With ``peer``,
        losing the connection to that node ends the wait at once with NodeDown
        (for replies only that node can send).
        """
        import asyncio  # here, not at the top: the blocking driver's calls are LocalProcesses too

        found, msg = self._take(match)
        if found:
            return msg
        if self.closed:
            raise MailboxClosed(f"mailbox {self.pid} is closed")
        fut = asyncio.get_running_loop().create_future()
        entry = (match, fut)
        conn = watch = None
        if peer is not None:
            conn = self.node.connection(peer)
            if conn is None:
                raise NodeDown.lost(peer, "not connected")
            watch = _LossWatch(fut, peer)
            conn.add_waiter(watch)
        self._waiters.append(entry)
        try:
            if timeout is None:
                return await fut
            return await asyncio.wait_for(fut, timeout)
        except TimeoutError:
            raise ReceiveTimeout(f"no matching message at {self.pid} within {timeout:g}s") from None
        finally:
            if entry in self._waiters:
                self._waiters.remove(entry)
            if conn is not None:
                conn.remove_waiter(watch)

    def _take(self, match: Callable[[Any], bool] | None) -> tuple[bool, Any]:
        q = self._queue
        if not q:
            return False, None
        if match is None:
            return True, q.popleft()
        for i, msg in enumerate(q):
            if _matches(match, msg):
                del q[i]
                return True, msg
        return False, None

    # --- acting -----------------------------------------------------------------

    async def send(self, dest: Any, msg: Any) -> None:
        """Send with this mailbox as the sender (SEND_SENDER / REG_SEND from our pid)."""
        await self.node.send(dest, msg, sender=self.pid)

    async def monitor(self, target: Pid | tuple[str, str]) -> Reference:
        """Monitor a process (pid, or ``(name, node)``); DOWN arrives here as
        ``('DOWN', Ref, 'process', Target, Reason)``."""
        return await self.node.monitor(self, target)

    async def demonitor(self, ref: Reference) -> None:
        self.node.demonitor(self, ref)

    def register(self, name: str) -> None:
        self.node.register(name, self)

    def alias(self) -> Reference:
        """A reference that works as an address of this mailbox (``Alias ! Msg`` on
        OTP 24+ arrives here as ALIAS_SEND) until the mailbox closes."""
        return self.node.table.alias(self)

    def close(self, reason: Any = NORMAL) -> None:
        if self.closed:
            return
        super().close(reason)
        for _, fut in self._waiters:
            if not fut.done():
                fut.set_exception(MailboxClosed(f"mailbox {self.pid} closed while receiving"))
        self._waiters.clear()


class _LossWatch:
    """Fails a receive when the connection it depends on goes."""

    __slots__ = ("fut", "peer")

    def __init__(self, fut: asyncio.Future, peer: str) -> None:
        self.fut = fut
        self.peer = peer

    def connection_lost(self, conn: Any, reason: str) -> None:
        if not self.fut.done():
            self.fut.set_exception(NodeDown.lost(self.peer, reason))


def _matches(match: Callable[[Any], bool], msg: Any) -> bool:
    try:
        return bool(match(msg))
    except Exception:  # a predicate that cannot handle this shape just does not match
        log.debug("receive predicate raised; treating as no match", exc_info=True)
        return False
