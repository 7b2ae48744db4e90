"""Sans-IO client side of the version 6 distribution handshake (OTP 23+).

No sockets here: feed received bytes with :meth:`ClientHandshake.receive_data`,
send what it returns. Every handshake message travels with a 2-byte length prefix
(4 bytes over OTP's TLS carrier, whose sockets are ``{packet, 4}`` throughout):

    we   -> 'N' Flags:64 Creation:32 NameLen:16 Name           send_name
    peer -> 's' Status                                          recv_status
            (on "alive" we answer 's' "true"/"false")
    peer -> 'N' Flags:64 Challenge:32 Creation:32 NameLen:16 Name
    we   -> 'r' OurChallenge:32 md5(cookie ++ decimal(PeerChallenge))
    peer -> 'a' md5(cookie ++ decimal(OurChallenge))            mutual proof

The peer closing the socket right after our challenge reply is how a node
rejects a wrong cookie; that case raises CookieRejected.
"""

from __future__ import annotations

import enum
import os
import struct

# MD5 and a constant-time compare from CPython's own small modules: hashlib and hmac
# load OpenSSL, a measurable share of a one-node CLI command (issue 14); the
# digest and the comparison are the same either way.
try:
    from _md5 import md5 as _md5
    from _operator import _compare_digest as compare_digest
except ImportError:  # a Python built without them
    from hashlib import md5 as _md5
    from hmac import compare_digest

from ..errors import CookieRejected, HandshakeError
from ..record import Record
from .flags import CLIENT_FLAGS, REQUIRED_PEER_FLAGS, DFlag, describe, missing_flags

MAX_HANDSHAKE_MESSAGE = 2048  # the longest legitimate message is a challenge with a 255-byte name


class State(enum.Enum):
    START = "start"
    AWAIT_STATUS = "await_status"
    AWAIT_CHALLENGE = "await_challenge"
    AWAIT_ACK = "await_ack"
    CONNECTED = "connected"
    FAILED = "failed"


class HandshakeResult(Record):  # not a dataclass: this loads at every CLI start
    __slots__ = _fields_ = ("peer_name", "peer_flags", "peer_creation", "our_flags", "status")
    _frozen = True
    peer_name: str
    peer_flags: int
    peer_creation: int
    our_flags: int
    status: str  # "ok", "ok_simultaneous", "alive" or "named:"


def gen_digest(challenge: int, cookie: str) -> bytes:
    """md5(cookie ++ decimal(challenge)), as dist_util:gen_digest/2."""
    return _md5(_cookie_bytes(cookie) + str(challenge).encode("ascii")).digest()


def _cookie_bytes(cookie: str) -> bytes:
    # atom_to_list(Cookie) is a list of code points; md5 of an iolist takes them as bytes
    try:
        return cookie.encode("latin-1")
    except UnicodeEncodeError:
        return cookie.encode("utf-8")


class ClientHandshake:
    """One handshake attempt from ``own_name`` to ``peer_name``.

    ``alive_answer`` is the reply when the peer says it still has a connection
    from our name: True (the default) tells it the old one is dead and this one wins,
    which is right because our name is unique to this process.
    """

    def __init__(
        self,
        own_name: str,
        peer_name: str,
        cookie: str,
        creation: int,
        *,
        flags: int = CLIENT_FLAGS,
        required_peer_flags: int = REQUIRED_PEER_FLAGS,
        challenge: int | None = None,
        alive_answer: bool = True,
        header: int = 2,
    ) -> None:
        self.own_name = own_name
        self.peer_name = peer_name
        self._cookie = cookie
        self.creation = creation
        self.flags = flags
        self.required_peer_flags = required_peer_flags
        self.our_challenge = int.from_bytes(os.urandom(4), "big") if challenge is None else challenge
        self.alive_answer = alive_answer
        self._len = _LEN4 if header == 4 else _LEN2
        self.state = State.START
        self.result: HandshakeResult | None = None
        self._buf = bytearray()
        self._status = ""
        self._peer_flags = 0
        self._peer_creation = 0
        self.leftover = b""  # bytes after the final ack: the first distribution frames
        self.error: HandshakeError | None = None  # set when the bytes returned are a farewell
        self.retryable = False  # a failure that a new attempt shortly after may not meet

    def __repr__(self) -> str:  # never show the cookie
        return f"<ClientHandshake {self.own_name} -> {self.peer_name} {self.state.value}>"

    # --- driving ----------------------------------------------------------

    def initiate(self) -> bytes:
        """The send_name message; call once, first."""
        if self.state is not State.START:
            raise HandshakeError(f"handshake with {self.peer_name} already started", node=self.peer_name)
        name = self.own_name.encode("utf-8")
        self.state = State.AWAIT_STATUS
        return self._frame(b"N" + struct.pack(">QIH", self.flags, self.creation, len(name)) + name)

    def receive_data(self, data: bytes) -> bytes:
        """Consume received bytes; return the bytes to send now (maybe empty).

        When :attr:`state` becomes CONNECTED, :attr:`result` is set and
        :attr:`leftover` holds any bytes that followed the ack. When :attr:`error`
        is set afterwards, send the returned bytes, then raise it.
        """
        if self.state in (State.CONNECTED, State.FAILED, State.START):
            raise HandshakeError(f"handshake with {self.peer_name} is {self.state.value}", node=self.peer_name)
        self._buf += data
        out = bytearray()
        while self.state not in (State.CONNECTED, State.FAILED):
            msg = self._next_message()
            if msg is None:
                break
            out += self._handle(msg)
        if self.state is State.CONNECTED:
            self.leftover = bytes(self._buf)
            self._buf.clear()
        return bytes(out)

    def connection_closed(self) -> Exception:
        """The error to raise because the peer closed the socket in the current state."""
        state, self.state = self.state, State.FAILED
        peer = self.peer_name
        if state is State.AWAIT_ACK:
            return CookieRejected(f"cookie rejected by {peer}", node=peer)
        if state is State.AWAIT_STATUS:
            return HandshakeError(
                f"{peer} closed the connection before answering our name "
                "(name form short/long mismatch, or it refuses our capabilities)",
                node=peer,
            )
        return HandshakeError(f"{peer} closed the connection during the handshake ({state.value})", node=peer)

    # --- internals ----------------------------------------------------------

    def _fail(self, message: str) -> HandshakeError:
        self.state = State.FAILED
        return HandshakeError(message, node=self.peer_name)

    def _frame(self, msg: bytes) -> bytes:
        return self._len.pack(len(msg)) + msg

    def _next_message(self) -> bytes | None:
        n = self._len.size
        if len(self._buf) < n:
            return None
        (length,) = self._len.unpack_from(self._buf, 0)
        if length == 0 or length > MAX_HANDSHAKE_MESSAGE:
            if self._buf[:1] in (b"\x15", b"\x16") and self._buf[1:2] == b"\x03":
                # a TLS record (alert or handshake): the node runs -proto_dist inet_tls
                raise self._fail(f"{self.peer_name} speaks TLS (-proto_dist inet_tls): "
                                 "connect with --ssl-dist-optfile or --tls-certfile/--tls-keyfile/--tls-cacertfile")
            raise self._fail(f"{self.peer_name} sent a handshake message of bad length {length}")
        if len(self._buf) < n + length:
            return None
        msg = bytes(self._buf[n : n + length])
        del self._buf[: n + length]
        return msg

    def _handle(self, msg: bytes) -> bytes:
        if self.state is State.AWAIT_STATUS:
            return self._on_status(msg)
        if self.state is State.AWAIT_CHALLENGE:
            return self._on_challenge(msg)
        return self._on_ack(msg)

    def _on_status(self, msg: bytes) -> bytes:
        peer = self.peer_name
        if msg[:1] != b"s":
            raise self._fail(f"{peer} sent {msg[:1]!r} where a status was expected")
        body = msg[1:]
        if body.startswith(b"named:"):
            return self._on_named(body[6:])
        status = body.decode("latin-1")
        self._status = status
        if status in ("ok", "ok_simultaneous"):
            self.state = State.AWAIT_CHALLENGE
            return b""
        if status == "alive":
            # the peer thinks our name is still connected; our name is ours alone,
            # so that connection is stale unless told otherwise
            if not self.alive_answer:
                self.state = State.FAILED
                self.error = HandshakeError(f"{peer} still has a live connection from {self.own_name}", node=peer)
                return self._frame(b"sfalse")
            self.state = State.AWAIT_CHALLENGE
            return self._frame(b"strue")
        if status == "nok":
            self.retryable = True  # the peer is still tearing down our previous connection
            raise self._fail(f"{peer} refused the connection (nok: a simultaneous connection attempt won)")
        if status == "not_allowed":
            raise self._fail(f"{peer} does not allow a connection from {self.own_name} (not_allowed)")
        raise self._fail(f"{peer} sent unknown handshake status {status[:40]!r}")

    def _on_named(self, rest: bytes) -> bytes:
        # 'named:' NameLen:16 Name Creation:32 - the answer to DFLAG_NAME_ME
        if not self.flags & DFlag.NAME_ME:
            raise self._fail(f"{self.peer_name} assigned us a name we did not ask for (named:)")
        if len(rest) < 2:
            raise self._fail(f"{self.peer_name} sent a truncated named: status")
        (nlen,) = struct.unpack_from(">H", rest, 0)
        if len(rest) < 2 + nlen + 4:
            raise self._fail(f"{self.peer_name} sent a truncated named: status")
        self.own_name = rest[2 : 2 + nlen].decode("utf-8", "replace")
        (self.creation,) = struct.unpack_from(">I", rest, 2 + nlen)
        self._status = "named:"
        self.state = State.AWAIT_CHALLENGE
        return b""

    def _on_challenge(self, msg: bytes) -> bytes:
        peer = self.peer_name
        tag = msg[:1]
        if tag == b"n":
            raise self._fail(f"{peer} speaks only distribution version 5 (OTP 22 or older); OTP 25+ is required")
        if tag != b"N" or len(msg) < 19:
            raise self._fail(f"{peer} sent a malformed challenge ({len(msg)} bytes, tag {tag!r})")
        flags, challenge, creation, nlen = struct.unpack_from(">QIIH", msg, 1)
        if len(msg) < 19 + nlen:
            raise self._fail(f"{peer} sent a truncated challenge")
        name = msg[19 : 19 + nlen].decode("utf-8", "replace")
        if name != peer:
            raise self._fail(f"connected to {peer} but the node there calls itself {name}")
        lacking = missing_flags(flags, self.required_peer_flags)
        if lacking:
            raise self._fail(f"{peer} lacks required distribution capabilities {describe(lacking)} (OTP 25+ needed)")
        self._peer_flags = flags
        self._peer_creation = creation
        self.state = State.AWAIT_ACK
        digest = gen_digest(challenge, self._cookie)
        return self._frame(b"r" + struct.pack(">I", self.our_challenge) + digest)

    def _on_ack(self, msg: bytes) -> bytes:
        peer = self.peer_name
        if msg[:1] != b"a" or len(msg) != 17:
            raise self._fail(f"{peer} sent a malformed challenge ack ({len(msg)} bytes)")
        if not compare_digest(msg[1:], gen_digest(self.our_challenge, self._cookie)):
            # it accepted our proof but cannot prove it knows the cookie itself
            raise self._fail(f"{peer} answered with a wrong cookie digest (it does not share our cookie)")
        self.state = State.CONNECTED
        self.result = HandshakeResult(
            peer_name=peer,
            peer_flags=self._peer_flags,
            peer_creation=self._peer_creation,
            our_flags=self.flags & self._peer_flags,
            status=self._status,
        )
        return b""


_LEN2 = struct.Struct(">H")
_LEN4 = struct.Struct(">I")
