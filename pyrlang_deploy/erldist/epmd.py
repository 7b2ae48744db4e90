"""epmd client: where does node ``name`` listen on ``host``?

Sans-IO encoders/parsers for PORT_PLEASE2 and NAMES, plus two small asyncio helpers.
epmd answers one request per TCP connection and closes it, so the helpers read to EOF.
"""

from __future__ import annotations

import asyncio
import os
import struct

from ..errors import ConnectError, EpmdUnreachable, NodeNotFound
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


# --- asyncio edge -----------------------------------------------------------


async def _request(host: str, port: int, request: bytes, timeout: float, limit: int) -> bytes:
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
    except (TimeoutError, OSError) as exc:
        cause = "timed out" if isinstance(exc, asyncio.TimeoutError) else _cause(exc)
        raise EpmdUnreachable(f"epmd not reachable on {host}:{port} ({cause})") from None
    try:
        writer.write(request)
        return await asyncio.wait_for(_read_to_eof(reader, limit, host, port), timeout)
    except (TimeoutError, OSError) as exc:
        cause = "timed out" if isinstance(exc, asyncio.TimeoutError) else _cause(exc)
        raise EpmdUnreachable(f"epmd on {host}:{port} did not answer ({cause})") from None
    finally:
        writer.close()


async def _read_to_eof(reader: asyncio.StreamReader, limit: int, host: str, port: int) -> bytes:
    """Everything up to EOF (epmd closes after answering), at most ``limit`` bytes."""
    data = bytearray()
    while True:
        chunk = await reader.read(65536)
        if not chunk:
            return bytes(data)
        data += chunk
        if len(data) > limit:
            raise ConnectError(f"epmd on {host}:{port} sent more than {limit} bytes "
                               f"(not an epmd reply)")


def _cause(exc: OSError) -> str:
    return (exc.strerror or str(exc) or type(exc).__name__).lower()


async def names(host: str, port: int | None = None, *, timeout: float = 5.0) -> list[tuple[str, int]]:
    """``[(name, port), ...]`` of the nodes registered with epmd on ``host``."""
    port = default_port() if port is None else port
    data = await _request(host, port, encode_names(), timeout, MAX_NAMES_REPLY)
    try:
        return parse_names(data)
    except ValueError as exc:
        raise ConnectError(f"epmd on {host}:{port} sent a malformed NAMES reply ({exc})") from None


async def port_please(host: str, name: str, port: int | None = None, *, timeout: float = 5.0) -> NodePort:
    """The distribution port of node ``name@host``; NodeNotFound lists what epmd knows."""
    port = default_port() if port is None else port
    data = await _request(host, port, encode_port_please2(name), timeout, MAX_PORT2_REPLY)
    try:
        found = parse_port_please2(data)
    except ValueError as exc:
        raise ConnectError(f"epmd on {host}:{port} sent a malformed PORT2 reply ({exc})",
                           node=f"{name}@{host}") from None
    if found is None:
        try:
            known = ", ".join(sorted(n for n, _ in await names(host, port, timeout=timeout))) or "none"
        except ConnectError:
            known = "unknown"
        raise NodeNotFound(f"no node named {name} on {host} (epmd knows: {known})", node=f"{name}@{host}")
    return found
