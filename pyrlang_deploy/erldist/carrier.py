"""The carrier under a distribution connection: plain TCP or TLS, IPv4 or IPv6.

``Reach`` says how this controller reaches nodes: where a node listens (epmd, a
port given with the name, or the one port of an epmd-less cluster) and whether
the stream is TLS. The handshake and frames above it are the same bytes either
way, with one difference OTP's TLS carrier makes (inet_tls_dist): its sockets
run with ``{packet, 4}`` from the start, so the handshake messages carry a
4-byte length there instead of TCP's 2 (:attr:`Reach.handshake_header`).

Host names resolve to IPv4 or IPv6 addresses alike (``create_connection`` tries
each address getaddrinfo gives), so ``a@::1`` and names with AAAA records work
with no option. Failures become one-line ConnectErrors naming the node and the
cause; TLS ones say which side refused which certificate.
"""

from __future__ import annotations

from collections.abc import Callable

from ..errors import ConnectError
from ..record import Record, factory
from . import epmd
from .address import bare_host

TYPE_CHECKING = False  # typing is not imported at run time: see cli/fastpath.py
if TYPE_CHECKING:
    import asyncio
    import ssl
    from typing import Any

    from .tls import TlsOptions
# asyncio, ssl and the TLS modules load where they are used: the CLI's plain-TCP
# path (blocking.py) reads a Reach and must not pay for them

# OpenSSL's verify messages, said the way an operator thinks of them
_VERIFY_HINTS = {
    "unable to get local issuer certificate": "not signed by our CA (check --tls-cacertfile)",
    "self-signed certificate in certificate chain": "its CA is not ours (check --tls-cacertfile)",
    "self signed certificate in certificate chain": "its CA is not ours (check --tls-cacertfile)",
    "certificate has expired": "it has expired",
    "certificate is not yet valid": "it is not valid yet",
}
# alerts the node sends when it refuses our client certificate
_ALERT_HINTS = {
    "TLSV1_ALERT_UNKNOWN_CA": "not signed by a CA the node trusts",
    "SSLV3_ALERT_CERTIFICATE_EXPIRED": "it has expired",
    "SSLV3_ALERT_BAD_CERTIFICATE": "bad certificate",
    "SSLV3_ALERT_CERTIFICATE_UNKNOWN": "certificate unknown",
    "TLSV13_ALERT_CERTIFICATE_REQUIRED": "the node requires one: give --tls-certfile/--tls-keyfile",
    "SSLV3_ALERT_HANDSHAKE_FAILURE": "handshake failure (no client certificate, or no common cipher)",
    "TLSV1_ALERT_ACCESS_DENIED": "access denied",
    "SSLV3_ALERT_UNSUPPORTED_CERTIFICATE": "unsupported certificate",
}


class Reach(Record):
    """How nodes are reached. ``ports``: node name -> its distribution port (no epmd);
    ``dist_port``: the one port of an epmd-less cluster; ``tls``: TLS client options."""

    _fields_ = ("tls", "dist_port", "ports", "_context")
    _defaults = {"tls": None, "dist_port": None, "ports": factory(dict), "_context": None}
    _hidden = ("_context",)
    tls: TlsOptions | None
    dist_port: int | None
    ports: dict[str, int]
    _context: ssl.SSLContext | None

    @property
    def handshake_header(self) -> int:
        return 4 if self.tls is not None else 2

    @property
    def context(self) -> ssl.SSLContext | None:
        """The SSLContext, built (files read) once, on the first TLS connect."""
        if self.tls is not None and self._context is None:
            from .tls import make_context

            self._context = make_context(self.tls)
        return self._context

    def static_port(self, node: str) -> int | None:
        return self.ports.get(node, self.dist_port)

    async def port_of(self, node: str, alive: str, host: str, epmd_port: int | None) -> int:
        """The node's distribution port: given, the cluster's fixed one, or epmd's answer."""
        port = self.static_port(node)
        if port is not None:
            return port
        return (await epmd.port_please(host, alive, epmd_port)).port

    async def open(self, factory: Callable[[], asyncio.Protocol], peer: str, host: str,
                   port: int) -> asyncio.Protocol:
        """A connected protocol over TCP or TLS; ConnectError naming ``peer`` and the cause.
        The caller's deadline covers the TLS handshake too."""
        import asyncio
        import ssl

        from .tls_stream import TlsStream

        loop = asyncio.get_running_loop()
        ctx = self.context
        stream = None
        if ctx is not None:
            # the host of the node name is both the SNI and the name the certificate must carry
            stream = TlsStream(ctx, self.tls.sni_for(bare_host(host)), factory(), loop)
            factory = lambda: stream  # noqa: E731
        try:
            _, proto = await loop.create_connection(factory, bare_host(host), port)
        except OSError as exc:
            raise ConnectError.unreachable(peer, host, port, exc, self.static_port(peer) is not None) from None
        if stream is None:
            return proto
        try:
            await stream.ready
        except ssl.SSLError as exc:
            raise tls_failure(peer, exc) from None
        except OSError:
            raise ConnectError(f"TLS: {peer} at {host}:{port} closed the connection during the TLS "
                               "handshake (a plain-TCP node, not -proto_dist inet_tls?)", node=peer) from None
        except BaseException:
            stream.raw.abort()
            raise
        return stream.app

    def explain(self, exc: ConnectError, lost: BaseException | None, peer: str) -> ConnectError:
        """A handshake failure, told by its TLS cause when there is one: under TLS 1.3 the
        node's verdict on our certificate arrives after the TLS handshake, as an alert."""
        import ssl

        if self.tls is not None and isinstance(lost, ssl.SSLError):
            return tls_failure(peer, lost)
        return exc


async def learn_ports(reach: Reach, rpc: Callable[..., Any], via: str, members: list[str]) -> None:
    """Ports of discovered members in a cluster reached by ``NAME@HOST:PORT`` seeds.

    Asks each member through the seed ``via`` (rex forwards a nested rpc:call) what
    erl_epmd:listen_port_please/2 says there: the fixed port of a node started with
    -erl_epmd_port / ERL_DIST_PORT, or 0 for a node registered with epmd (which we
    then ask, as usual).
    """
    from ..term import Atom

    wanted = [m for m in members if reach.static_port(m) is None]
    if not wanted:
        return

    async def one(member: str) -> None:
        alive, _, host = member.partition("@")
        try:
            got = await rpc(via, "rpc", "call", [Atom(member), Atom("erl_epmd"), Atom("listen_port_please"),
                                                 [alive, host], 10_000])
        except Exception:
            return  # the connect attempt will say what is wrong
        if isinstance(got, tuple) and len(got) == 2 and got[0] == "ok" and isinstance(got[1], int) and got[1] > 0:
            reach.ports[member] = got[1]

    import asyncio

    await asyncio.gather(*(one(m) for m in wanted))


def tls_failure(peer: str, exc: BaseException) -> ConnectError:
    """A TLS error during or right after the TLS handshake, as a one-line ConnectError."""
    import ssl

    reason = getattr(exc, "reason", None) or ""
    if isinstance(exc, ssl.SSLCertVerificationError):
        return ConnectError(f"TLS: {peer}'s certificate is rejected: {_verify_cause(exc)}", node=peer)
    if reason in _ALERT_HINTS:
        return ConnectError(f"TLS: {peer} rejected our client certificate: {_ALERT_HINTS[reason]}", node=peer)
    if reason in ("WRONG_VERSION_NUMBER", "RECORD_LAYER_FAILURE", "PACKET_LENGTH_TOO_LONG",
                  "UNEXPECTED_RECORD", "HTTP_REQUEST") or isinstance(exc, ssl.SSLEOFError):
        return ConnectError(f"TLS: {peer} does not speak TLS (a plain-TCP node, not -proto_dist inet_tls?)",
                            node=peer)
    text = str(reason).lower().replace("_", " ") if reason else type(exc).__name__
    return ConnectError(f"TLS handshake with {peer} failed ({text})", node=peer)


def _verify_cause(exc: ssl.SSLCertVerificationError) -> str:
    msg = (exc.verify_message or str(exc)).rstrip(".")
    if msg.lower().startswith("hostname mismatch") or msg.lower().startswith("ip address mismatch"):
        return f"it does not name the node's host ({msg})"
    return _VERIFY_HINTS.get(msg, msg)

