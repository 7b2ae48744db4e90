"""A one-node Cluster with blocking sockets and no event loop, for the CLI's fast path.

`erldeploy rpc -n NODE erlang node` spends most of its life importing: asyncio alone
(with ssl, logging and concurrent.futures under it) costs several times a bare Python
start. For one node and a few sequential calls no event loop is needed: this module
drives the same sans-IO cores as erldist (ClientHandshake, FrameReader, the codec)
over a plain socket.

    qc = QuickCluster.connect(node, cookie=..., epmd_port=...)   # None if anything is off
    value = run_now(qc.rpc(node, "erlang", "node", []))         # async API, no loop

Only the happy path lives here. Any failure before a call is sent (epmd, connect,
handshake, cookie) returns None from connect(), and the caller takes the full asyncio
path, which connects again and reports the failure in its own words; nothing is
sent twice. After a call is sent, failures are reported here: a timeout, the node
going away, {badrpc, _}. The methods are `async` so the code written for Cluster
(dist_ops, remote_eval, the syntax check) runs unchanged: they never suspend, and
run_now() finishes such a coroutine in one step.
"""

from __future__ import annotations

import os
import select
import socket
import struct
import time
from typing import Any, Callable

from .cluster import Cluster
from .errors import NodeDown, RpcError, RpcTimeout
from .term import decode, encode
from .term.types import Atom, Pid, Reference

_PORT_PLEASE2_REQ, _PORT2_RESP = 122, 119
_SEND, _REG_SEND, _SEND_SENDER = 2, 6, 22
_TICK = b"\x00\x00\x00\x00"


def run_now(coro: Any) -> Any:
    """Finish a coroutine that never suspends (everything here blocks instead)."""
    try:
        coro.send(None)
    except StopIteration as stop:
        return stop.value
    coro.close()
    raise RuntimeError("a quick-path coroutine waited on an event loop")


class QuickCluster(Cluster):
    """Cluster's interface (members, rpc, each) over one blocking connection."""

    @classmethod
    def connect(cls, node: str, *, cookie: str, name: str | None = None, timeout: float = 30.0,
                epmd_port: int | None = None) -> "QuickCluster | None":
        qc = cls(seeds=[node], cookie=cookie, name=name, timeout=timeout, epmd_port=epmd_port)
        try:
            qc._open_now(node)
        except Exception:  # the full path will say what went wrong
            qc._close_now()
            return None
        qc.members = [node]
        return qc

    async def open(self) -> None:  # connected in connect()
        return None

    async def close(self) -> None:
        self._close_now()

    # --- connecting ---------------------------------------------------------------

    def _open_now(self, peer: str) -> None:
        from .erldist.framing import FrameReader
        from .erldist.handshake import ClientHandshake, State
        from .erldist.names import is_long_host, own_host, split_node, unique_alive

        self._sock: socket.socket | None = None
        alive, host = split_node(peer)
        limit = min(self.timeout, 15.0)
        port = self.epmd_port or int(os.environ.get("ERL_EPMD_PORT") or 4369)
        dist_port = _port_please(host, port, alive, limit)
        if self.name and "@" in self.name:
            own = self.name
        elif host.startswith("127.") and host.replace(".", "").isdigit():
            own = f"{self.name or unique_alive()}@{host}"   # own_host's loopback rule, minus ipaddress
        else:
            own = f"{self.name or unique_alive()}@{own_host(is_long_host(host), host)}"
        self.creation = 4 + int.from_bytes(os.urandom(4), "big") % 0xFFFFFFF0
        sock = socket.create_connection((_host_arg(host), dist_port), timeout=limit)
        self._sock = sock
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        hs = ClientHandshake(own, peer, self.cookie, self.creation)
        sock.sendall(hs.initiate())
        while hs.state is not State.CONNECTED:
            data = sock.recv(65536)
            if not data:
                raise hs.connection_closed()
            out = hs.receive_data(data)
            if out:
                sock.sendall(out)
            if hs.error is not None:
                raise hs.error
        self.peer = peer
        self._me = Atom(own)
        self._reader = FrameReader()
        self._pending = self._reader.feed(hs.leftover) if hs.leftover else []
        self._serial = 0
        self._replies: dict[Reference, Any] = {}

    def _close_now(self) -> None:
        sock = getattr(self, "_sock", None)
        if sock is not None:
            self._sock = None
            sock.close()

    # --- calls --------------------------------------------------------------------

    async def rpc(self, node: str, module: str, function: str, args: Any = (), *,
                  timeout: float | None = None, io: Callable[[str], None] | None = None) -> Any:
        return self._call(module, function, list(args), self.timeout if timeout is None else timeout, io)

    def _call(self, module: str, function: str, args: list, timeout: float | None,
              io: Callable[[str], None] | None) -> Any:
        mfa = f"{module}:{function}/{len(args)}"
        self._serial += 1
        pid = Pid(self._me, self._serial, 0, self.creation)
        ref = Reference(self._me, self.creation, (self._serial, 0, 0))
        self._send((_REG_SEND, pid, Atom(""), Atom("rex")),
                   (Atom("$gen_call"), (pid, ref), (Atom("call"), Atom(module), Atom(function), args, pid)))
        deadline = None if timeout is None else time.monotonic() + timeout
        while ref not in self._replies:
            self._step(deadline, pid, io, mfa, timeout)
        reply = self._replies.pop(ref)
        if type(reply) is tuple and len(reply) == 2 and reply[0] == "badrpc":
            from .erldist.rpc import format_reason  # the error path may import asyncio
            raise RpcError(f"{self.peer}: {mfa} failed: {format_reason(reply[1])}", node=self.peer,
                           reason=reply[1])
        return reply

    def _send(self, control: Any, message: Any) -> None:
        from .erldist.framing import data_frame

        if self._sock is None:
            raise NodeDown(f"{self.peer}: not connected", node=self.peer)
        self._sock.sendall(data_frame(encode(control), encode(message)))

    def _step(self, deadline: float | None, pid: Pid, io: Callable[[str], None] | None,
              mfa: str, timeout: float | None) -> None:
        """Handle one frame: a tick, a reply, an io request; wait for one if none is read."""
        if not self._pending:
            wait = None if deadline is None else deadline - time.monotonic()
            if wait is not None and wait <= 0:
                raise RpcTimeout(f"{self.peer}: {mfa} timed out after {timeout:g}s", node=self.peer,
                                 reason=Atom("timeout"))
            ready, _, _ = select.select([self._sock], [], [], wait)
            if not ready:
                return
            try:
                data = self._sock.recv(1 << 16)
            except OSError as e:
                data, why = b"", e.strerror or str(e)
            else:
                why = "connection closed"
            if not data:
                self._close_now()
                raise NodeDown(f"{self.peer} went down during the call to {mfa} ({why})", node=self.peer)
            self._pending = self._reader.feed(data)
            return
        frame = self._pending.pop(0)
        if not frame:
            self._sock.sendall(_TICK)  # answer a tick with one
            return
        control, off = decode(frame, 1)
        if not (type(control) is tuple and control and control[0] in (_SEND, _SEND_SENDER)) or off >= len(frame):
            return  # monitors, links, exits: nothing here asked for them
        msg, _ = decode(frame, off)
        if type(msg) is tuple and len(msg) == 2 and type(msg[0]) is Reference:
            self._replies[msg[0]] = msg[1]
        elif type(msg) is tuple and len(msg) == 4 and msg[0] == "io_request":
            self._io(msg, control[-1], io)

    def _io(self, msg: tuple, to_pid: Any, io: Callable[[str], None] | None) -> None:
        """An io request from the call (its group leader is the call's pid): erldist's
        IoServer answers it, with this connection as its node."""
        from .erldist.io_server import IoServer

        IoServer(_IoNode(self), to_pid, io or _stdout).handle(msg)


class _IoNode:
    """What IoServer needs of a node: send a reply, run its async work, call the peer."""

    def __init__(self, qc: QuickCluster) -> None:
        self.qc = qc

    def _send_nowait(self, to: Any, msg: Any, sender: Any = None) -> None:
        self.qc._send((_SEND, Atom(""), to), msg)

    def _spawn(self, coro: Any) -> None:
        run_now(coro)   # the io request's formatting call: nested, and answered before the reply

    async def rpc(self, node: str, module: str, function: str, args: Any, timeout: float | None = None) -> Any:
        return self.qc._call(module, function, list(args), timeout, None)


def _stdout(text: str) -> None:
    import sys

    sys.stdout.write(text)
    sys.stdout.flush()


def _host_arg(host: str) -> str | bytes:
    # an ASCII host as bytes: getaddrinfo then skips the idna codec (and its imports)
    return host.encode("ascii") if host.isascii() else host


def _port_please(host: str, epmd_port: int, alive: str, timeout: float) -> int:
    """The node's distribution port from epmd (PORT_PLEASE2); raises on anything but a hit."""
    name = alive.encode("utf-8")
    with socket.create_connection((_host_arg(host), epmd_port), timeout=timeout) as s:
        s.sendall(struct.pack(">HB", len(name) + 1, _PORT_PLEASE2_REQ) + name)
        data = b""
        while True:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
    if len(data) < 4 or data[0] != _PORT2_RESP or data[1] != 0:
        raise LookupError(f"epmd on {host} has no {alive}")
    return struct.unpack_from(">H", data, 2)[0]
