"""Fuzzing the parsers a peer feeds (issue 10): the term decoder, the frame reader,
the epmd replies and the handshake. Any input gives a value or the one documented
error, within a time and memory budget (hypothesis, bounded example counts)."""

from __future__ import annotations

import struct
import time
import tracemalloc
import zlib

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pyrlang_deploy.erldist import control as ctl
from pyrlang_deploy.erldist import epmd
from pyrlang_deploy.erldist.flags import CLIENT_FLAGS, REQUIRED_PEER_FLAGS
from pyrlang_deploy.erldist.framing import FrameReader, FrameTooLarge, data_frame
from pyrlang_deploy.erldist.handshake import ClientHandshake, State, gen_digest
from pyrlang_deploy.errors import ConnectError, DecodeError
from pyrlang_deploy.term import Atom, Pid, decode, encode

FUZZ = settings(max_examples=400, deadline=500, suppress_health_check=[HealthCheck.too_slow])
BUDGET = 8 << 20  # bytes any one input may make the parsers allocate (peak, tracemalloc)


class Bounded:
    """Asserts the peak Python allocation and the time of what runs inside."""

    def __init__(self, memory: int = BUDGET, seconds: float = 0.5) -> None:
        self.memory, self.seconds = memory, seconds

    def __enter__(self) -> Bounded:
        tracemalloc.start()
        self.t0 = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        took = time.perf_counter() - self.t0
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        if exc[0] is None:
            assert peak < self.memory, f"peak {peak} bytes"
            assert took < self.seconds, f"took {took:.3f}s"


# --- the term decoder, with lengths and compression that lie ----------------------------------

LYING = st.one_of(
    st.binary(max_size=64),
    # a container header claiming up to 4G elements, then a little
    st.tuples(st.sampled_from([b"l", b"h", b"i", b"t", b"m", b"k", b"n", b"o", b"M", b"P"]),
              st.integers(0, 0xFFFFFFFF), st.binary(max_size=32))
    .map(lambda t: t[0] + struct.pack(">I", t[1]) + t[2]),
    # a compressed term declaring any size, with real or junk zlib data
    st.tuples(st.integers(0, 0xFFFFFFFF), st.binary(max_size=200), st.booleans())
    .map(lambda t: b"P" + struct.pack(">I", t[0]) + (zlib.compress(t[1]) if t[2] else t[1])),
)


@FUZZ
@given(LYING)
def test_decoder_gives_a_term_or_decode_error(body):
    with Bounded():
        try:
            decode(b"\x83" + body, 0, 1 << 20)
        except DecodeError:
            pass


# --- framing -------------------------------------------------------------------------------------

@FUZZ
@given(st.lists(st.binary(max_size=40), max_size=20), st.integers(1, 1 << 32))
def test_frame_reader_gives_frames_or_frame_too_large(chunks, limit):
    r = FrameReader(max_frame=min(limit, 1 << 20))
    with Bounded():
        for chunk in chunks:
            try:
                frames = r.feed(chunk)
            except FrameTooLarge as e:
                assert e.length > r.max_frame
                return
            assert all(isinstance(f, bytes) for f in frames)
        assert r.buffered <= sum(map(len, chunks))


@FUZZ
@given(st.lists(st.binary(max_size=300), min_size=1, max_size=8), st.data())
def test_frames_split_anywhere_come_out_whole(payloads, data):
    stream = b"".join(data_frame(encode(p)) if p else b"\x00\x00\x00\x00" for p in payloads)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=10)))
    r = FrameReader(max_frame=1 << 16)
    got = []
    for a, b in zip([0, *cuts], [*cuts, len(stream)]):
        got += r.feed(stream[a:b])
    assert got == [b"p" + encode(p) if p else b"" for p in payloads]


# --- epmd replies -----------------------------------------------------------------------------------

@FUZZ
@given(st.one_of(st.binary(max_size=80), st.binary(max_size=40).map(lambda b: b"w\x00" + b)))
def test_port2_reply_parses_or_raises_value_error(data):
    with Bounded():
        try:
            found = epmd.parse_port_please2(data)
        except ValueError:
            return
    assert found is None or isinstance(found, epmd.NodePort)


@FUZZ
@given(st.binary(max_size=200).map(lambda b: b"\x00\x00\x11\x11" + b) | st.binary(max_size=8))
def test_names_reply_parses_or_raises_value_error(data):
    with Bounded():
        try:
            names = epmd.parse_names(data)
        except ValueError:
            return
    assert all(isinstance(n, str) and isinstance(p, int) for n, p in names)


# --- the handshake -----------------------------------------------------------------------------------

COOKIE = "fuzzcookie"
ME, PEER = "me@127.0.0.1", "them@127.0.0.1"


def hs_msg(body: bytes) -> bytes:
    return struct.pack(">H", len(body)) + body


def good_server_bytes(hs: ClientHandshake) -> list[bytes]:
    name = PEER.encode()
    flags = CLIENT_FLAGS | REQUIRED_PEER_FLAGS
    return [hs_msg(b"sok"), hs_msg(b"N" + struct.pack(">QIIH", flags, 1234, 9, len(name)) + name)]


@FUZZ
@given(st.lists(st.binary(max_size=60), max_size=6))
def test_handshake_takes_any_bytes_to_a_state_or_a_connect_error(chunks):
    hs = ClientHandshake(ME, PEER, COOKIE, 5)
    hs.initiate()
    with Bounded():
        for chunk in chunks:
            try:
                out = hs.receive_data(chunk)
            except ConnectError:
                assert hs.state is State.FAILED or hs.error is not None
                return
            assert isinstance(out, bytes)
            if hs.error is not None or hs.state in (State.CONNECTED, State.FAILED):
                return


@FUZZ
@given(st.integers(0, 200), st.integers(0, 255), st.data())
def test_a_corrupted_real_handshake_fails_cleanly(index, byte, data):
    hs = ClientHandshake(ME, PEER, COOKIE, 5)
    hs.initiate()
    stream = bytearray(b"".join(good_server_bytes(hs)))
    if index < len(stream):
        stream[index] = byte
    cut = data.draw(st.integers(0, len(stream)))
    with Bounded():
        try:
            out = hs.receive_data(bytes(stream[:cut]))
            if hs.state is not State.FAILED and hs.error is None:
                out += hs.receive_data(bytes(stream[cut:]))
        except ConnectError:
            return
    if index >= len(stream):  # nothing corrupted: the reply to the challenge proves the cookie
        assert hs.state is State.AWAIT_ACK and out[-16:] == gen_digest(1234, COOKIE)


# --- control messages from any decoded term ---------------------------------------------------------

TERMS = st.recursive(
    st.one_of(st.integers(-5, 40), st.sampled_from([Atom("a"), Atom(""), Pid(Atom("n@h"), 1, 0, 1)]),
              st.binary(max_size=4)),
    lambda inner: st.lists(inner, max_size=5).map(tuple) | st.lists(inner, max_size=3),
    max_leaves=12,
)


@FUZZ
@given(TERMS)
def test_control_parse_gives_a_control_or_none(term):
    with Bounded():
        c = ctl.parse(term)
    assert c is None or isinstance(c, ctl.Control)
