"""A lying epmd and a lying node, for the hostile-peer tests (asyncio, loopback).

Both run on their own event loop in a background thread, so a CLI started as a
subprocess (or our own LocalNode on the test's loop) can talk to them.

    with FakePeer(epmd=streaming_epmd) as fp:        # epmd misbehaves
    with FakePeer(node=after_handshake(send_junk)) as fp:   # the node misbehaves
        fp.epmd_port, fp.node_name, fp.cookie

The node side does the server half of the real handshake (so our client really
connects), then runs a behaviour ``async def b(reader, writer, call)`` where
``call`` is the first RPC the client sent (its reply pid and ref), if any.
Frames it sends are built by hand here, not by the product's encoder, except
where a normal term is needed to address the reply.
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import struct
import threading
import zlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from pyrlang_deploy.erldist.flags import CLIENT_FLAGS, REQUIRED_PEER_FLAGS
from pyrlang_deploy.term import Atom, decode, encode

Behaviour = Callable[[asyncio.StreamReader, asyncio.StreamWriter, "Call | None"], Awaitable[None]]


@dataclass
class Call:
    """The first ``{'$gen_call', {Pid, Ref}, {call, M, F, A, GL}}`` the client sent to rex."""

    pid: Any
    ref: Any
    mfa: tuple


def _digest(challenge: int, cookie: str) -> bytes:
    return hashlib.md5(cookie.encode() + str(challenge).encode()).digest()


async def _read_hs(reader: asyncio.StreamReader) -> bytes:
    (n,) = struct.unpack(">H", await reader.readexactly(2))
    return await reader.readexactly(n)


def _hs(msg: bytes) -> bytes:
    return struct.pack(">H", len(msg)) + msg


async def read_frame(reader: asyncio.StreamReader) -> bytes:
    (n,) = struct.unpack(">I", await reader.readexactly(4))
    return await reader.readexactly(n)


def frame(payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + payload


def reply_frame(call: Call, reply: bytes, *, compressed: bool = False) -> bytes:
    """SEND to the caller's pid of ``{Ref, Reply}``; ``reply`` is Reply's encoding
    without the 131 byte. ``compressed``: the message as one tag-80 term."""
    control = encode((2, Atom(""), call.pid))  # {SEND, '', ToPid}
    inner = b"h\x02" + encode(call.ref)[1:] + reply
    if compressed:
        packed = zlib.compress(inner, 9)
        msg = b"\x83P" + struct.pack(">I", len(inner)) + packed
    else:
        msg = b"\x83" + inner
    return frame(b"p" + control + msg)


class FakePeer:
    def __init__(self, *, epmd: Callable[..., Awaitable[None]] | None = None,
                 node: Behaviour | None = None, cookie: str | None = None) -> None:
        self.cookie = cookie or "fake" + secrets.token_hex(6)
        self.alive = "fake" + secrets.token_hex(3)
        self.node_name = f"{self.alive}@127.0.0.1"
        self._epmd_behaviour = epmd
        self._node_behaviour = node
        self.epmd_port = 0
        self.node_port = 0
        self.errors: list[BaseException] = []
        self.connections = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True, name="fake-peer")
        self._servers: list[asyncio.base_events.Server] = []

    # --- life -------------------------------------------------------------------------

    def __enter__(self) -> FakePeer:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        return self

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    async def _start(self) -> None:
        node = await asyncio.start_server(self._serve_node, "127.0.0.1", 0)
        epmd = await asyncio.start_server(self._serve_epmd, "127.0.0.1", 0)
        self._servers = [node, epmd]
        self.node_port = node.sockets[0].getsockname()[1]
        self.epmd_port = epmd.sockets[0].getsockname()[1]

    async def _stop(self) -> None:
        for s in self._servers:
            s.close()
        for t in [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]:
            t.cancel()

    # --- epmd -------------------------------------------------------------------------

    async def _serve_epmd(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            req = await _read_hs(reader)
            if self._epmd_behaviour is not None:
                await self._epmd_behaviour(req, writer, self)
            elif req[:1] == b"z" and req[1:].decode() == self.alive:  # PORT_PLEASE2
                name = self.alive.encode()
                writer.write(b"w\x00" + struct.pack(">HBBHHH", self.node_port, 77, 0, 6, 5, len(name))
                             + name + b"\x00\x00")
            elif req[:1] == b"z":
                writer.write(b"w\x01")
            await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        except BaseException as e:  # noqa: BLE001 - recorded for the test to see
            self.errors.append(e)
        finally:
            writer.close()

    # --- the node ---------------------------------------------------------------------

    async def _serve_node(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            msg = await _read_hs(reader)  # 'N' Flags:64 Creation:32 NameLen:16 Name
            assert msg[:1] == b"N", msg[:1]
            writer.write(_hs(b"sok"))
            challenge = secrets.randbits(32)
            name = self.node_name.encode()
            flags = CLIENT_FLAGS | REQUIRED_PEER_FLAGS
            writer.write(_hs(b"N" + struct.pack(">QIIH", flags, challenge, 7, len(name)) + name))
            reply = await _read_hs(reader)  # 'r' Challenge:32 Digest:16
            assert reply[:1] == b"r" and reply[5:21] == _digest(challenge, self.cookie), "bad digest"
            (theirs,) = struct.unpack(">I", reply[1:5])
            writer.write(_hs(b"a" + _digest(theirs, self.cookie)))
            await writer.drain()
            call = await self._first_call(reader, writer)
            if self._node_behaviour is not None:
                await self._node_behaviour(reader, writer, call)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass  # the client hung up: what the tests expect of it
        except BaseException as e:  # noqa: BLE001
            self.errors.append(e)
        finally:
            writer.close()

    async def _first_call(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> Call | None:
        """Read frames until a call to rex other than net_kernel:get_net_ticktime (answered: 60)."""
        while True:
            data = await asyncio.wait_for(read_frame(reader), 10)
            if not data:
                continue  # a tick
            control, off = decode(data, 1)
            if control[0] != 6:  # REG_SEND
                continue
            msg, _ = decode(data, off)
            _, (pid, ref), (_, m, f, a, _) = msg
            call = Call(pid, ref, (m, f, a))
            if (m, f) == ("net_kernel", "get_net_ticktime"):
                writer.write(reply_frame(call, encode(60)[1:]))
                continue
            return call
