"""Node names: splitting, short vs long form, and our own unique name."""

from __future__ import annotations

import os
import socket

from ..errors import UsageError

MAX_NODE_CHARS = 255  # the atom length limit
MAX_ALIVE_BYTES = 255  # epmd's MAXSYMLEN


def split_node(node: str) -> tuple[str, str]:
    """``"a@host"`` -> ``("a", "host")``; UsageError for anything else."""
    alive, sep, host = node.partition("@")
    if not sep or not alive or not host or "@" in host:
        raise UsageError(f"not a node name: {node[:80]!r} (expected name@host)", node=node[:80])
    if len(node) > MAX_NODE_CHARS:  # a node name is an atom
        raise UsageError(f"node name {node[:40]}... is {len(node)} characters long; "
                         f"a node name is an atom of at most {MAX_NODE_CHARS}", node=node[:80])
    check_alive(alive)
    return alive, host


def check_alive(alive: str) -> bytes:
    """The part before the @ as epmd takes it; UsageError if epmd could never know it."""
    raw = alive.encode("utf-8")
    if len(raw) > MAX_ALIVE_BYTES:
        raise UsageError(f"node name {alive[:40]}... has {len(raw)} bytes before the @; "
                         f"epmd allows at most {MAX_ALIVE_BYTES}")
    return raw


def is_long_host(host: str) -> bool:
    """Long names have a dotted host or an IP address (``erl -name``); short ones do not."""
    return "." in host or ":" in host


def _ip_loopback(host: str) -> bool:
    """True for a loopback IP address (127.0.0.0/8, ::1), as ipaddress's is_loopback.

    IPv4 (strict dotted quad, as ipaddress reads it) through inet_pton: `ipaddress`
    costs ~3 ms at every start of a CLI talking to a@127.0.0.1."""
    try:
        return socket.inet_pton(socket.AF_INET, host)[0] == 127
    except OSError:
        pass
    if ":" not in host:
        return False  # a host name
    import ipaddress

    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def own_host(long: bool, peer_host: str | None = None) -> str:
    """The host part of our name in the form the peer expects.

    The host in a hidden client's name is only a label (we never listen), but OTP
    rejects a short name from a long-name node and vice versa.
    """
    if not long:
        return socket.gethostname().split(".")[0] or "localhost"
    if peer_host is not None and _ip_loopback(peer_host):
        return peer_host  # a@127.0.0.1 clusters: stay on loopback
    fqdn = socket.getfqdn()
    if "." in fqdn:
        return fqdn
    try:
        return socket.gethostbyname(socket.gethostname())
    except OSError:
        return "127.0.0.1"


def unique_alive(prefix: str = "erldeploy") -> str:
    """A fresh alive part per run so two controllers never collide."""
    return f"{prefix}-{os.urandom(4).hex()}"  # secrets.token_hex(4), without its imports
