"""Where a node listens: ``NAME@HOST:PORT`` targets and epmd-less clusters.

A node name never contains a port; users write one to reach a node directly
(no epmd asked): ``app@10.0.0.5:9100``, ``app@[::1]:9100``. An IPv6 host without a
port is written bare (``app@::1``), as the node names itself under inet6_tcp.

Clusters started with ``ERL_DIST_PORT``/``-erl_epmd_port`` and ``-start_epmd false``
listen on one known port on every host, and their own nodes reach each other by
that rule (erl_epmd:port_please answers the fixed port without asking epmd), so
``dist_port`` applies to every node we meet, discovered members included.
"""

from __future__ import annotations

from ..errors import UsageError
from ..record import Record


class Target(Record):  # not a dataclass nor a NamedTuple: this loads at every CLI start
    __slots__ = _fields_ = ("node", "port")
    _frozen = True
    _defaults = {"port": None}
    node: str  # the node's name, as it calls itself: "app@host"
    port: int | None  # its distribution port when given; None: ask epmd


def parse_target(text: str) -> Target:
    """``"a@h"``, ``"a@h:9100"``, ``"a@[::1]:9100"``, ``"a@::1"`` -> Target."""
    alive, sep, host = text.partition("@")
    if not sep or not alive or not host or "@" in host:
        raise UsageError(f"not a node name: {text!r} (expected name@host or name@host:port)", node=text)
    port_text = None
    if host.startswith("["):
        inner, bracket, rest = host[1:].partition("]")
        if not bracket or not inner or (rest and not rest.startswith(":")):
            raise UsageError(f"not a node address: {text!r} (IPv6 with a port: name@[addr]:port)", node=text)
        host, port_text = inner, (rest[1:] if rest else None)
    elif host.count(":") == 1:
        host, port_text = host.split(":")
    # several colons and no brackets: a bare IPv6 address, no port
    if port_text is None:
        return Target(f"{alive}@{host}")
    return Target(f"{alive}@{host}", parse_port(port_text, text))


def parse_port(text: str | int, what: str = "port") -> int:
    try:
        port = int(text)
    except (TypeError, ValueError):
        port = -1
    if not 0 < port < 65536:
        raise UsageError(f"bad port in {what!r}: expected 1..65535")
    return port


def split_targets(nodes: list[str], *, lenient: bool = False) -> tuple[list[str], dict[str, int]]:
    """Node names without ports (duplicates dropped), and the ports given as NAME@HOST:PORT.
    ``lenient``: keep what does not parse as it is (connecting to it reports the error)."""
    names: list[str] = []
    ports: dict[str, int] = {}
    for n in nodes:
        try:
            t = parse_target(n)
        except UsageError:
            if not lenient:
                raise
            t = Target(n)
        if t.node not in names:
            names.append(t.node)
        if t.port is not None:
            ports[t.node] = t.port
    return names, ports


def bare_host(host: str) -> str:
    """A host as sockets take it: ``[::1]`` (as node names carry IPv6) is ``::1``."""
    return host[1:-1] if host.startswith("[") and host.endswith("]") else host


def socket_host(host: str) -> str | bytes:
    """:func:`bare_host` for a blocking ``socket.create_connection``: ASCII names as
    bytes, because getaddrinfo encodes a str with the idna codec, whose import
    (with stringprep and unicodedata) costs a one-node CLI command milliseconds."""
    bare = bare_host(host)
    return bare.encode("ascii") if bare.isascii() else bare
