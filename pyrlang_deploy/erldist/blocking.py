"""The blocking driver: our hidden node, one peer, no event loop.

``erldeploy rpc -n NODE erlang node`` is mostly interpreter start-up, and
importing asyncio alone costs several times a bare ``python -c pass``. For the
CLI's one-node commands (rpc, eval, ping; cli/fastpath.py) this driver carries
the same node over plain blocking sockets. It is not a second protocol
implementation: the handshake (handshake.py), frame reader and its size limit
(framing.py), what each frame means (inbound.py: ticks, replies, the first bad
frame ends the connection), every control message (nodecore.py), the call and
its io (call.py, io_server.py) and stopping a timed-out call on the node
(call.STOP_SOURCE) are the asyncio driver's own code. What differs is only who
waits: the caller, in :meth:`BlockingConnection.pump`.

Its coroutine methods (``connect``, ``rpc``, ``close``) never suspend, so code
written for ``LocalNode`` (cluster.py, remote_eval.py, cli/syntax.py) runs on
it unchanged, driven by :func:`run_sync` instead of an event loop.

Not here, by design: TLS (Python's ``ssl`` import is as heavy as asyncio's),
several peers, calls in flight together. The CLI takes the asyncio driver for
those (cli/fastpath.py decides).
"""

from __future__ import annotations

import select
import socket
import time
from collections import deque
from collections.abc import Callable

from ..errors import ConnectError, ErldeployError, HandshakeError, NodeDown
from ..syncdrive import run_sync
from ..term import encode
from . import control as ctl
from .address import socket_host
from .call import STOP_GRACE, STOP_SOURCE, RpcCall, check_timeout, encode_call_frame
from .debuglog import get_logger
from .epmd import port_please_blocking
from .flags import DFlag
from .framing import TICK_FRAME, FrameReader, data_frame
from .handshake import ClientHandshake, State
from .inbound import InboundFrames, Waiters
from .names import split_node
from .nodecore import NodeCore
from .proctable import NO_PAYLOAD

TYPE_CHECKING = False  # typing is not imported at run time: see cli/fastpath.py
if TYPE_CHECKING:
    from typing import Any

log = get_logger(__name__)

TICK_TIME = 60.0  # OTP's default net_ticktime: we tick at its pace
PROBE_TIMEOUT = 15.0  # how long a silent peer has to answer "are you there" before it is gone
_READ = 262144


class Outcome:
    """The future of one call on this driver: set once, read once."""

    __slots__ = ("_done", "_value", "_error")

    def __init__(self) -> None:
        self._done = False
        self._value: Any = None
        self._error: BaseException | None = None

    def done(self) -> bool:
        return self._done

    def set_result(self, value: Any) -> None:
        self._done, self._value = True, value

    def set_exception(self, exc: BaseException) -> None:
        self._done, self._error = True, exc

    def cancel(self) -> bool:
        if self._done:
            return False
        self.set_exception(NodeDown("call cancelled"))
        return True

    def result(self) -> Any:
        if self._error is not None:
            raise self._error
        return self._value


class BlockingConnection(InboundFrames, Waiters):
    """An established connection, read only while its caller waits (:meth:`pump`)."""

    def __init__(self, node: BlockingNode, sock: socket.socket, hs: ClientHandshake) -> None:
        result = hs.result
        self.node = node
        self.peer = result.peer_name
        self.peer_flags = result.peer_flags
        self.flags = result.our_flags
        self.send_sender = bool(self.peer_flags & DFlag.SEND_SENDER)
        self.exit_payload = bool(self.peer_flags & DFlag.EXIT_PAYLOAD)
        self.max_frame = node.max_frame
        self.closed = False
        self.close_reason = ""
        self._sock = sock
        self._poll = select.poll()
        self._poll.register(sock.fileno(), select.POLLIN)
        self._reader = FrameReader(self.max_frame)
        self._frames: deque[bytes] = deque()  # read, not yet handled (pump may be re-entered)
        self._waiters: set[Any] = set()
        self._reads = 0
        self._last_read = self._last_write = time.monotonic()
        # Silence longer than this means the peer is gone. We do not ask the peer's
        # net_ticktime up front (a round trip on every CLI command): an alive node
        # ticks every quarter of it, so at OTP's default we hear from it every 15 s;
        # a node with a longer ticktime is asked once it has been silent this long.
        self._silence_limit = self._tick_time = node.net_ticktime or TICK_TIME
        self._probing = False
        if hs.leftover:
            self._take(hs.leftover)

    # --- what RpcCall and NodeCore use ----------------------------------------------------

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self.closed:
            raise NodeDown.lost(self.peer, self.close_reason)
        try:
            self._sock.sendall(data)
        except OSError as exc:
            self._lose(f"connection error: {exc}")
            raise NodeDown.lost(self.peer, self.close_reason) from None
        self._last_write = time.monotonic()

    def _write_now(self, data: bytes) -> None:
        if not self.closed:
            try:
                self.write(data)
            except NodeDown:
                pass  # the waiters already know

    def send_control(self, c: ctl.Control, payload: Any = NO_PAYLOAD) -> None:
        msg = None if payload is NO_PAYLOAD else encode(payload)
        self.write(data_frame(encode(c.term()), msg))

    # --- waiting --------------------------------------------------------------------------

    def pump(self, until: Callable[[], bool], deadline: float | None) -> bool:
        """Read and handle frames until ``until()`` holds (True) or ``deadline`` (False).

        Frames are handled one at a time from a queue, so a handler that waits in
        turn (formatting io:format output calls the node) sees later frames in order.
        """
        while not until():
            if self._frames:
                self.on_frames([self._frames.popleft()])
                continue
            if self.closed:
                return True  # every waiter has been failed: until() is settled by now
            now = time.monotonic()
            if deadline is not None and now >= deadline:
                return False
            if now - self._last_read > self._silence_limit and not self._probing:
                self._probe()
                continue
            quarter = self._tick_time / 4
            if now - self._last_write >= quarter:
                self._write_now(TICK_FRAME)
            wait = quarter if deadline is None else min(deadline - now, quarter)
            if not self._poll.poll(max(wait, 0.0) * 1000.0):
                continue
            try:
                data = self._sock.recv(_READ)
            except (BlockingIOError, InterruptedError):
                continue
            except OSError as exc:
                self._lose(f"connection error: {exc}")
                continue
            if not data:
                self._lose("connection closed")
                continue
            self._take(data)
        return True

    def _probe(self) -> None:
        """Silent too long: ask the node its net_ticktime; its answer proves it alive and
        sets how long it may be silent, no answer within PROBE_TIMEOUT ends the connection."""
        silent = time.monotonic() - self._last_read
        self._probing = True
        try:
            t = self.node.call(self.peer, "net_kernel", "get_net_ticktime", [],
                               timeout=min(PROBE_TIMEOUT, self._tick_time / 4), stop_on_timeout=False)
        except ErldeployError:
            self.abort(f"no data for {silent:.0f}s (net_ticktime)")
            return
        finally:
            self._probing = False
        if isinstance(t, tuple) and len(t) == 2:  # {ongoing_change_to, T}
            t = t[1]
        if isinstance(t, int) and t > 0:
            self._silence_limit = max(self._tick_time, 1.25 * t)

    def _take(self, data: bytes) -> None:
        self._last_read = time.monotonic()
        frames = self.feed(self._reader, data)
        if frames:
            self._frames.extend(frames)

    # --- closing --------------------------------------------------------------------------

    def _lose(self, reason: str) -> None:
        if self.closed:
            return
        self.closed = True
        self.close_reason = reason
        self._frames.clear()
        self._fail_waiters(reason)
        self.node.on_connection_lost(self, reason)
        self._sock.close()

    def abort(self, reason: str) -> None:
        self._lose(reason)

    def close(self, reason: str = "disconnected") -> None:
        self._lose(reason)


class BlockingNode(NodeCore):
    """A hidden node for one peer at a time, over blocking sockets (see the module doc).

    ``reach``: None, or a carrier.Reach without TLS (ports given per node or the
    cluster's one port); cli/fastpath.py never hands it a TLS one. ``net_ticktime``:
    how often we tick and how long a peer may stay silent before it is asked whether
    it is there (default OTP's 60 s; see BlockingConnection._probe).
    """

    def __init__(self, name: str | None = None, cookie: str | None = None, *, epmd_port: int | None = None,
                 reach: Any = None, io_sink: Callable[[str], Any] | None = None,
                 max_frame: int | None = None, net_ticktime: float | None = None) -> None:
        NodeCore.__init__(self, name, cookie, epmd_port=epmd_port, io_sink=io_sink, max_frame=max_frame)
        self.net_ticktime = net_ticktime
        if reach is not None and reach.tls is not None:
            raise ValueError("the blocking driver does not do TLS")
        self.reach = reach

    def __repr__(self) -> str:  # never the cookie
        return f"<BlockingNode {self.table.node or self._alive} peers={sorted(self._conns)}>"

    # --- connecting -----------------------------------------------------------------------

    async def connect(self, peer: str, timeout: float | None = 10.0) -> BlockingConnection:
        conn = self._conns.get(peer)
        if conn is not None and not conn.closed:
            return conn
        conn = self._connect(peer, 10.0 if timeout is None else timeout)
        self._conns[peer] = conn
        return conn

    def _connect(self, peer: str, timeout: float) -> BlockingConnection:
        alive, host = split_node(peer)
        own = self._node_atom(host)  # our name takes the peer's form (short/long)
        deadline = time.monotonic() + timeout
        given = None if self.reach is None else self.reach.static_port(peer)
        if given is None:
            port = port_please_blocking(host, alive, self.epmd_port, timeout=min(timeout, 5.0)).port
        else:
            port = given
        delay = 0.02
        while True:
            hs = ClientHandshake(str(own), peer, self._cookie, self.creation)
            sock = self._open(peer, host, port, given is not None, deadline, timeout)
            try:
                self._handshake(hs, sock, deadline, peer, timeout)
                return BlockingConnection(self, sock, hs)
            except HandshakeError:
                sock.close()
                if not hs.retryable or time.monotonic() + delay >= deadline:
                    raise
                # 'nok': the peer still holds our previous connection; it goes soon
                time.sleep(delay)
                delay = min(delay * 2, 0.5)
            except BaseException:
                sock.close()
                raise

    @staticmethod
    def _open(peer: str, host: str, port: int, given: bool, deadline: float, timeout: float) -> socket.socket:
        left = deadline - time.monotonic()
        if left <= 0:
            raise ConnectError.timed_out(peer, timeout)
        try:
            sock = socket.create_connection((socket_host(host), port), left)
        except TimeoutError:
            raise ConnectError.timed_out(peer, timeout) from None
        except OSError as exc:
            raise ConnectError.unreachable(peer, host, port, exc, given) from None
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock

    @staticmethod
    def _handshake(hs: ClientHandshake, sock: socket.socket, deadline: float, peer: str, timeout: float) -> None:
        try:
            sock.sendall(hs.initiate())
            while hs.state is not State.CONNECTED:
                sock.settimeout(max(deadline - time.monotonic(), 0.001))
                data = sock.recv(65536)
                if not data:
                    raise hs.connection_closed()
                out = hs.receive_data(data)
                if out:
                    sock.sendall(out)
                if hs.error is not None:
                    raise hs.error
        except TimeoutError:
            raise ConnectError.timed_out(peer, timeout) from None
        except OSError as exc:
            if isinstance(exc, ConnectError):
                raise
            raise ConnectError(f"connection to {peer} failed during the handshake ({exc})", node=peer) from None
        sock.settimeout(None)

    # --- calls ----------------------------------------------------------------------------

    async def rpc(self, peer: str, module: str, function: str, args: Any = (), *,
                  timeout: float | None = 30.0, io: Callable[[str], Any] | None = None,
                  stop_on_timeout: bool = True) -> Any:
        """``module:function(*args)`` on ``peer``: the same contract as rpc.call."""
        return self.call(peer, module, function, args, timeout=timeout, io=io, stop_on_timeout=stop_on_timeout)

    def call(self, peer: str, module: str, function: str, args: Any = (), *,
             timeout: float | None = 30.0, io: Callable[[str], Any] | None = None,
             stop_on_timeout: bool = True) -> Any:
        if type(args) is not list:
            args = list(args)
        if timeout is not None:
            timeout = check_timeout(timeout)
        conn = self._conns.get(peer)
        if conn is None or conn.closed:
            conn = run_sync(self.connect(peer))
        table = self.table
        pid_ids, wpid = table.new_wire_pid()
        ref_ids, wref = table.new_wire_ref()
        proc = RpcCall(self, conn, Outcome(), conn.peer, module, function, len(args), io,
                       pid_ids, wpid, ref_ids, wref)
        table.calls[wpid] = proc
        conn.add_waiter(proc)
        try:
            for piece in encode_call_frame(wpid, wref, module, function, args):
                conn.write(piece)
        except NodeDown as exc:
            proc._finish()
            raise NodeDown.during_call(conn.peer, proc.mfa, conn.close_reason or str(exc)) from None
        deadline = None if timeout is None else time.monotonic() + timeout
        if not conn.pump(proc.future.done, deadline):
            proc.timeout = timeout
            proc.stop_on_timeout = stop_on_timeout
            proc.expired()
        return proc.future.result()

    def stop_timed_out(self, peer: str, leader: Any) -> None:
        """Kill on ``peer`` what a timed-out call led by ``leader`` left running, within
        STOP_GRACE in all (the asyncio driver's rule); a failure is only logged."""
        from ..remote_eval import eval_erlang

        deadline = time.monotonic() + STOP_GRACE

        async def rpc(n: str, m: str, f: str, a: Any = (), **kw: Any) -> Any:
            left = deadline - time.monotonic()
            if left <= 0:
                raise ConnectError(f"no time left to stop the call on {n}", node=n)
            kw["timeout"] = left
            return self.call(n, m, f, a, stop_on_timeout=False, **kw)

        try:
            run_sync(eval_erlang(rpc, peer, STOP_SOURCE, {"Leader": leader}))
        except Exception as exc:  # the node may be gone or busy; the timeout is reported anyway
            log.debug("could not stop the timed-out call on %s: %s", peer, exc)

    def spawn(self, coro: Any, *, finish: bool = False) -> None:
        """Work the asyncio driver runs as a task (an io request that formats on the
        node) runs here and now, inside the wait that delivered it."""
        run_sync(coro)

    # --- closing --------------------------------------------------------------------------

    async def close(self) -> None:
        for conn in list(self._conns.values()):
            conn.close("local node closed")
        for proc in list(self.table.procs.values()):
            proc.close()
