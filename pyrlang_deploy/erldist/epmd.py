"""epmd client: where does node ``name`` listen on ``host``?

Sans-IO encoders/parsers for PORT_PLEASE2 and NAMES, and two edges that send them:
asyncio (``port_please``, ``names``) and blocking (``port_please_blocking``, for the
CLI's one-node path, which does without asyncio). epmd answers one request per TCP
connection and closes it, so both read to EOF, at most a reply's worth of bytes.
"""

from __future__ import annotations

import os
import struct

from ..errors import ConnectError, EpmdUnreachable, NodeNotFound, os_cause
from ..record import Record
from .names import MAX_ALIVE_BYTES as MAX_NAME
from .names import check_alive

DEFAULT_PORT = 4369
PORT_PLEASE2_REQ = 122
PORT2_RESP = 119
NAMES_REQ = 110
# Replies are tiny; an epmd that sends more is not one. PORT2_RESP: 12 bytes,
# a name of up to 255 and extra data of up to 64 KiB. NAMES: one line per node.
MAX_PORT2_REPLY = 12 + MAX_NAME + 2 + 0xFFFF
MAX_NAMES_REPLY = 1 << 20


def default_port() -> int:
    """``ERL_EPMD_PORT`` if set (as ``erl`` honours it), else 4369."""
    value = os.environ.get("ERL_EPMD_PORT", "")
    try:
        return int(value) if value else DEFAULT_PORT
    except ValueError:
        return DEFAULT_PORT


class NodePort(Record):  # not a dataclass: this loads at every CLI start
    """A PORT2_RESP for a registered node."""

    # name: str, port: int, node_type: int (77 = normal Erlang node, 72 = hidden),
    # protocol: int (0 = tcp/ipv4), highest_version: int, lowest_version: int, extra: bytes
    __slots__ = _fields_ = (
        "name", "port", "node_type", "protocol", "highest_version", "lowest_version", "extra",
    )
    _frozen = True
    _defaults = {"extra": b""}
    name: str
    port: int
    node_type: int
    protocol: int
    highest_version: int
    lowest_version: int
    extra: bytes


def encode_port_please2(name: str) -> bytes:
    body = bytes([PORT_PLEASE2_REQ]) + check_alive(name)
    return struct.pack(">H", len(body)) + body


def parse_port_please2(data: bytes) -> NodePort | None:
    """Parse a complete PORT2_RESP. ``None`` means epmd does not know the name."""
    if len(data) < 2 or data[0] != PORT2_RESP:
        raise ValueError(f"not a PORT2_RESP: {bytes(data[:8])!r}")
    if data[1] != 0:
        return None
    if len(data) < 12:
        raise ValueError("truncated PORT2_RESP")
    port, ntype, proto, high, low, nlen = struct.unpack_from(">HBBHHH", data, 2)
    end = 12 + nlen
    if len(data) < end:
        raise ValueError("truncated PORT2_RESP node name")
    name = bytes(data[12:end]).decode("utf-8", "replace")
    extra = b""
    if len(data) >= end + 2:
        (elen,) = struct.unpack_from(">H", data, end)
        extra = bytes(data[end + 2 : end + 2 + elen])
    return NodePort(name, port, ntype, proto, high, low, extra)


def encode_names() -> bytes:
    return struct.pack(">HB", 1, NAMES_REQ)


def parse_names(data: bytes) -> list[tuple[str, int]]:
    """Parse a complete NAMES_RESP: ``EPMDPortNo:32`` then ``name N at port P`` lines."""
    if len(data) < 4:
        raise ValueError("truncated NAMES_RESP")
    result: list[tuple[str, int]] = []
    for line in bytes(data[4:]).decode("utf-8", "replace").splitlines():
        # epmd prints "name foo at port 4711" (and "old/unused name ..." for stale slots)
        parts = line.split()
        if len(parts) == 5 and parts[0] == "name" and parts[2:4] == ["at", "port"]:
            try:
                result.append((parts[1], int(parts[4])))
            except ValueError:
                continue
    return result


# --- the replies, for both edges ---------------------------------------------


def _too_long(host: str, port: int, limit: int) -> ConnectError:
    return ConnectError(f"epmd on {host}:{port} sent more than {limit} bytes (not an epmd reply)")


def _port_reply(host: str, name: str, port: int, data: bytes) -> NodePort | None:
    try:
        return parse_port_please2(data)
    except ValueError as exc:
        raise ConnectError(f"epmd on {host}:{port} sent a malformed PORT2 reply ({exc})",
                           node=f"{name}@{host}") from None


def _names_reply(host: str, port: int, data: bytes) -> list[tuple[str, int]]:
    try:
        return parse_names(data)
    except ValueError as exc:
        raise ConnectError(f"epmd on {host}:{port} sent a malformed NAMES reply ({exc})") from None


def _not_found(host: str, name: str, known: list[tuple[str, int]] | None) -> NodeNotFound:
    listed = "unknown" if known is None else ", ".join(sorted(n for n, _ in known)) or "none"
    return NodeNotFound(f"no node named {name} on {host} (epmd knows: {listed})", node=f"{name}@{host}")


# --- asyncio edge -----------------------------------------------------------


async def _request(host: str, port: int, request: bytes, timeout: float, limit: int) -> bytes:
    import asyncio

    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
    except (TimeoutError, OSError) as exc:
        cause = "timed out" if isinstance(exc, asyncio.TimeoutError) else os_cause(exc)
        raise EpmdUnreachable(f"epmd not reachable on {host}:{port} ({cause})") from None
    try:
        writer.write(request)
        return await asyncio.wait_for(_read_to_eof(reader, limit, host, port), timeout)
    except (TimeoutError, OSError) as exc:
        cause = "timed out" if isinstance(exc, asyncio.TimeoutError) else os_cause(exc)
        raise EpmdUnreachable(f"epmd on {host}:{port} did not answer ({cause})") from None
    finally:
        writer.close()


async def _read_to_eof(reader, limit: int, host: str, port: int) -> bytes:
    """Everything up to EOF (epmd closes after answering), at most ``limit`` bytes."""
    data = bytearray()
    while True:
        chunk = await reader.read(65536)
        if not chunk:
            return bytes(data)
        data += chunk
        if len(data) > limit:
            raise _too_long(host, port, limit)


async def names(host: str, port: int | None = None, *, timeout: float = 5.0) -> list[tuple[str, int]]:
    """``[(name, port), ...]`` of the nodes registered with epmd on ``host``."""
    port = default_port() if port is None else port
    return _names_reply(host, port, await _request(host, port, encode_names(), timeout, MAX_NAMES_REPLY))


async def port_please(host: str, name: str, port: int | None = None, *, timeout: float = 5.0) -> NodePort:
    """The distribution port of node ``name@host``; NodeNotFound lists what epmd knows."""
    port = default_port() if port is None else port
    found = _port_reply(host, name, port,
                        await _request(host, port, encode_port_please2(name), timeout, MAX_PORT2_REPLY))
    if found is None:
        try:
            known = await names(host, port, timeout=timeout)
        except ConnectError:
            known = None
        raise _not_found(host, name, known)
    return found


# --- blocking edge ----------------------------------------------------------


def _request_blocking(host: str, port: int, request: bytes, timeout: float, limit: int) -> bytes:
    import socket
    import time

    from .address import socket_host

    deadline = time.monotonic() + timeout
    try:
        sock = socket.create_connection((socket_host(host), port), timeout)
    except OSError as exc:
        cause = "timed out" if isinstance(exc, TimeoutError) else os_cause(exc)
        raise EpmdUnreachable(f"epmd not reachable on {host}:{port} ({cause})") from None
    with sock:
        try:
            sock.sendall(request)
            data = bytearray()
            while True:
                sock.settimeout(max(deadline - time.monotonic(), 0.001))
                chunk = sock.recv(65536)
                if not chunk:
                    return bytes(data)
                data += chunk
                if len(data) > limit:
                    raise _too_long(host, port, limit)
        except OSError as exc:
            cause = "timed out" if isinstance(exc, TimeoutError) else os_cause(exc)
            raise EpmdUnreachable(f"epmd on {host}:{port} did not answer ({cause})") from None


def port_please_blocking(host: str, name: str, port: int | None = None, *, timeout: float = 5.0) -> NodePort:
    """:func:`port_please`, blocking the caller."""
    port = default_port() if port is None else port
    found = _port_reply(host, name, port,
                        _request_blocking(host, port, encode_port_please2(name), timeout, MAX_PORT2_REPLY))
    if found is None:
        try:
            known = _names_reply(host, port, _request_blocking(host, port, encode_names(), timeout,
                                                              MAX_NAMES_REPLY))
        except ConnectError:
            known = None
        raise _not_found(host, name, known)
    return found
