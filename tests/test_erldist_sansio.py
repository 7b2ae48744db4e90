"""Sans-IO layers of the hidden node, tested without sockets or Erlang:
flags, handshake state machine, epmd messages, framing, control ops, wire fast path."""

from __future__ import annotations

import asyncio
import hashlib
import struct

import pytest

from pyrlang_deploy.erldist import control as ctl
from pyrlang_deploy.erldist import epmd, wire
from pyrlang_deploy.erldist.flags import (
    CLIENT_FLAGS,
    MANDATORY_25,
    MANDATORY_26,
    REQUIRED_PEER_FLAGS,
    DFlag,
    describe,
    missing_flags,
)
from pyrlang_deploy.erldist.framing import FrameReader, data_frame
from pyrlang_deploy.erldist.handshake import ClientHandshake, State, gen_digest
from pyrlang_deploy.erldist.io_server import chardata_to_str
from pyrlang_deploy.erldist.names import is_long_host, own_host, split_node
from pyrlang_deploy.erldist.timers import Deadlines
from pyrlang_deploy.errors import CookieRejected, HandshakeError, UsageError
from pyrlang_deploy.term import Atom, ImproperList, Pid, Reference, decode, encode

ME, PEER, COOKIE = "me@127.0.0.1", "a@127.0.0.1", "secret"
PEER_FLAGS = int(CLIENT_FLAGS | DFlag.SPAWN | DFlag.FRAGMENTS | DFlag.PUBLISHED)


# --- flags ---------------------------------------------------------------------------


def test_flag_values_are_those_of_dist_hrl():
    assert DFlag.MANDATORY_25_DIGEST == 0x4000000
    assert DFlag.UNLINK_ID == 0x2000000
    assert DFlag.HANDSHAKE_23 == 0x1000000
    assert DFlag.V4_NC == 0x4 << 32
    assert DFlag.ALIAS == 0x8 << 32
    assert int(MANDATORY_25) == 0x1070F94  # MANDATORY_DFLAGS_25 of dist.hrl, summed by hand


def test_client_flags_hidden_and_complete():
    assert CLIENT_FLAGS & MANDATORY_25 == MANDATORY_25
    assert CLIENT_FLAGS & MANDATORY_26 == MANDATORY_26
    assert CLIENT_FLAGS & DFlag.MANDATORY_25_DIGEST
    for absent in (DFlag.PUBLISHED, DFlag.FRAGMENTS, DFlag.DIST_HDR_ATOM_CACHE, DFlag.ATOM_CACHE):
        assert not CLIENT_FLAGS & absent, absent


def test_missing_flags_and_describe():
    assert not missing_flags(PEER_FLAGS)
    assert REQUIRED_PEER_FLAGS & MANDATORY_25 == MANDATORY_25
    lacking = missing_flags(PEER_FLAGS & ~DFlag.MAP_TAG & ~DFlag.UTF8_ATOMS)
    assert lacking == DFlag.MAP_TAG | DFlag.UTF8_ATOMS
    assert describe(lacking) == "UTF8_ATOMS|MAP_TAG"
    assert describe(0) == "0"


# --- handshake -------------------------------------------------------------------------


def _msg(body: bytes) -> bytes:
    return struct.pack(">H", len(body)) + body


def _challenge(challenge=0xDEADBEEF, flags=PEER_FLAGS, creation=777, name=PEER) -> bytes:
    n = name.encode()
    return _msg(b"N" + struct.pack(">QIIH", flags, challenge, creation, len(n)) + n)


def _ack(hs: ClientHandshake, cookie=COOKIE) -> bytes:
    return _msg(b"a" + hashlib.md5(cookie.encode() + str(hs.our_challenge).encode()).digest())


def _started(**kw) -> tuple[ClientHandshake, bytes]:
    hs = ClientHandshake(ME, PEER, COOKIE, 1234, challenge=42, **kw)
    return hs, hs.initiate()


def test_send_name_is_version_6_with_creation():
    hs, out = _started()
    length, tag, flags, creation, nlen = struct.unpack_from(">HcQIH", out)
    assert tag == b"N" and flags == CLIENT_FLAGS and creation == 1234
    assert out[17:] == ME.encode() and nlen == len(ME) and length == len(out) - 2
    assert hs.state is State.AWAIT_STATUS


def test_full_handshake_with_mutual_digest():
    hs, _ = _started()
    assert hs.receive_data(_msg(b"sok")) == b""
    reply = hs.receive_data(_challenge())
    assert reply[2:3] == b"r" and struct.unpack_from(">I", reply, 3)[0] == 42
    # our proof: md5(cookie ++ "3735928559")
    assert reply[7:] == hashlib.md5(b"secret3735928559").digest()
    assert hs.state is State.AWAIT_ACK
    assert hs.receive_data(_ack(hs) + b"\x00\x00\x00\x00") == b""
    assert hs.state is State.CONNECTED
    assert hs.leftover == b"\x00\x00\x00\x00"  # a tick right after the ack belongs to the connection
    r = hs.result
    assert r.peer_name == PEER and r.peer_creation == 777 and r.status == "ok"
    assert not r.our_flags & DFlag.PUBLISHED  # the peer's PUBLISHED bit does not make us published


def test_messages_split_at_every_byte():
    hs, _ = _started()
    stream = _msg(b"sok") + _challenge()
    out = b"".join(hs.receive_data(stream[i:i + 1]) for i in range(len(stream)))
    assert out.startswith(struct.pack(">H", 21) + b"r")
    ack = _ack(hs)
    for i in range(len(ack)):
        hs.receive_data(ack[i:i + 1])
    assert hs.state is State.CONNECTED


def test_ok_simultaneous_continues():
    hs, _ = _started()
    hs.receive_data(_msg(b"sok_simultaneous") + _challenge())
    hs.receive_data(_ack(hs))
    assert hs.result.status == "ok_simultaneous"


@pytest.mark.parametrize("answer", [True, False])
def test_alive_is_answered(answer):
    hs, _ = _started(alive_answer=answer)
    out = hs.receive_data(_msg(b"salive"))
    assert out == _msg(b"strue" if answer else b"sfalse")
    if answer:
        assert hs.error is None and hs.state is State.AWAIT_CHALLENGE
    else:
        assert isinstance(hs.error, HandshakeError) and hs.state is State.FAILED


@pytest.mark.parametrize("status, words", [
    (b"snok", "nok"), (b"snot_allowed", "not_allowed"), (b"sweird", "unknown handshake status"),
    (b"snamed:\x00\x01x\x00\x00\x00\x01", "did not ask"),
])
def test_refusing_statuses(status, words):
    hs, _ = _started()
    with pytest.raises(HandshakeError) as e:
        hs.receive_data(_msg(status))
    assert words in str(e.value) and PEER in str(e.value)
    assert hs.state is State.FAILED


def test_named_status_when_asked_for_a_name():
    hs = ClientHandshake("me", PEER, COOKIE, 1, flags=CLIENT_FLAGS | DFlag.NAME_ME, challenge=1)
    hs.initiate()
    given = b"gen-1@host"
    hs.receive_data(_msg(b"snamed:" + struct.pack(">H", len(given)) + given + struct.pack(">I", 99)))
    assert hs.own_name == "gen-1@host" and hs.creation == 99 and hs.state is State.AWAIT_CHALLENGE


def test_challenge_from_the_wrong_node_is_refused():
    hs, _ = _started()
    hs.receive_data(_msg(b"sok"))
    with pytest.raises(HandshakeError, match="calls itself b@127.0.0.1"):
        hs.receive_data(_challenge(name="b@127.0.0.1"))


def test_peer_without_required_flags_is_refused():
    hs, _ = _started()
    hs.receive_data(_msg(b"sok"))
    with pytest.raises(HandshakeError, match="MAP_TAG"):
        hs.receive_data(_challenge(flags=PEER_FLAGS & ~DFlag.MAP_TAG))


def test_old_version_5_challenge_is_refused():
    hs, _ = _started()
    hs.receive_data(_msg(b"sok"))
    with pytest.raises(HandshakeError, match="version 5"):
        hs.receive_data(_msg(b"n\x00\x05" + b"\x00" * 8 + PEER.encode()))


def test_peer_with_another_cookie_fails_its_own_proof():
    hs, _ = _started()
    hs.receive_data(_msg(b"sok") + _challenge())
    with pytest.raises(HandshakeError, match="wrong cookie digest"):
        hs.receive_data(_ack(hs, cookie="other"))


def test_close_after_our_reply_is_a_rejected_cookie():
    hs, _ = _started()
    hs.receive_data(_msg(b"sok") + _challenge())
    err = hs.connection_closed()
    assert isinstance(err, CookieRejected) and str(err) == f"cookie rejected by {PEER}"


def test_close_before_status_is_a_handshake_error_not_a_cookie_error():
    hs, _ = _started()
    err = hs.connection_closed()
    assert type(err) is HandshakeError and PEER in str(err)


def test_cookie_never_in_repr_or_errors():
    hs, _ = _started()
    assert COOKIE not in repr(hs)
    hs.receive_data(_msg(b"sok") + _challenge())
    assert COOKIE not in str(hs.connection_closed())


def test_oversized_handshake_message_is_refused():
    hs, _ = _started()
    with pytest.raises(HandshakeError, match="bad length"):
        hs.receive_data(b"\xff\xff" + b"s" * 10)


def test_gen_digest_matches_otp_definition():
    assert gen_digest(1, "abc") == hashlib.md5(b"abc1").digest()


# --- epmd ------------------------------------------------------------------------------


def test_port_please2_request():
    assert epmd.encode_port_please2("foo") == b"\x00\x04zfoo"


def test_port2_response_found_and_not_found():
    name = b"foo"
    data = (bytes([119, 0]) + struct.pack(">HBBHHH", 4711, 77, 0, 6, 5, len(name)) + name
            + struct.pack(">H", 2) + b"xy")
    np = epmd.parse_port_please2(data)
    assert (np.name, np.port, np.node_type, np.highest_version, np.lowest_version, np.extra) == \
        ("foo", 4711, 77, 6, 5, b"xy")
    assert epmd.parse_port_please2(bytes([119, 1])) is None
    with pytest.raises(ValueError):
        epmd.parse_port_please2(b"x")
    with pytest.raises(ValueError):
        epmd.parse_port_please2(bytes([119, 0, 1]))


def test_names_request_and_response():
    assert epmd.encode_names() == b"\x00\x01n"
    data = struct.pack(">I", 4369) + b"name a at port 1\nname c at port 33\nold/unused name x at port 5\n"
    assert epmd.parse_names(data) == [("a", 1), ("c", 33)]


def test_epmd_port_from_environment(monkeypatch):
    monkeypatch.setenv("ERL_EPMD_PORT", "5555")
    assert epmd.default_port() == 5555
    monkeypatch.delenv("ERL_EPMD_PORT")
    assert epmd.default_port() == 4369


# --- framing -----------------------------------------------------------------------------


def test_frames_and_ticks_split_anywhere():
    f1 = data_frame(b"\x83a\x01", b"\x83a\x02")
    stream = b"\x00\x00\x00\x00" + f1 + b"\x00\x00\x00\x00" + f1
    for cut in range(len(stream) + 1):
        r = FrameReader()
        frames = r.feed(stream[:cut]) + r.feed(stream[cut:])
        assert frames == [b"", b"p\x83a\x01\x83a\x02", b"", b"p\x83a\x01\x83a\x02"], cut
        assert r.buffered == 0


def test_large_frame_arrives_in_pieces():
    body = b"p" + b"x" * 1_000_000
    stream = struct.pack(">I", len(body)) + body
    r = FrameReader()
    got = []
    for i in range(0, len(stream), 4096):
        got += r.feed(stream[i:i + 4096])
    assert got == [body]


def test_big_frames_mixed_with_small_ones_in_random_chunks():
    import random

    rnd = random.Random(7)
    bodies = [b"p" + bytes([i]) * n for i, n in enumerate((300_000, 10, 2_000_000, 0, 5, 400_000))]
    stream = b"".join(struct.pack(">I", len(b)) + b for b in bodies)
    for _ in range(5):
        r, got, pos = FrameReader(), [], 0
        while pos < len(stream):
            step = rnd.choice((1, 3, 4096, 65536, 1 << 20))
            got += r.feed(stream[pos:pos + step])
            pos += step
        assert [len(g) for g in got] == [len(b) for b in bodies] and got == bodies
        assert r.buffered == 0


def test_lying_length_allocates_nothing_up_front():
    r = FrameReader(max_frame=1 << 32)
    assert r.feed(b"\xff\xff\xff\xffp") == []
    assert r.buffered == 5


@pytest.mark.parametrize("split", [False, True])
def test_a_frame_over_the_limit_is_refused_at_its_header(split):
    from pyrlang_deploy.erldist.framing import DEFAULT_MAX_FRAME, FrameTooLarge

    assert DEFAULT_MAX_FRAME >= 16 << 20  # well above the agent's 1 MiB upload chunks
    r = FrameReader(max_frame=1000)
    ok = data_frame(encode(Atom("x")))
    assert r.feed(ok) == [ok[4:]]
    big = struct.pack(">I", 1001) + b"p"
    with pytest.raises(FrameTooLarge, match="1001 bytes, over the 1000 byte limit"):
        if split:  # the header alone, then more: refused before anything is kept
            r.feed(big[:3])
            r.feed(big[3:])
        else:
            r.feed(ok + big)
    exact = struct.pack(">I", 1000) + b"p" * 1000
    assert FrameReader(max_frame=1000).feed(exact) == [b"p" * 1000]


# --- control messages -------------------------------------------------------------------

P1 = Pid(Atom("a@h"), 1, 0, 3)
P2 = Pid(Atom(ME), 2, 0, 4)
R1 = Reference(Atom("a@h"), 3, (1, 2, 3))


@pytest.mark.parametrize("msg", [
    ctl.Link(P1, P2), ctl.Unlink(P1, P2), ctl.UnlinkId(7, P1, P2), ctl.UnlinkIdAck(7, P2, P1),
    ctl.Send(P2), ctl.SendTT(P2, Atom("tok")), ctl.SendSender(P1, P2), ctl.SendSenderTT(P1, P2, 1),
    ctl.RegSend(P1, Atom("rex")), ctl.RegSendTT(P1, Atom("rex"), 1), ctl.AliasSend(P1, R1),
    ctl.AliasSendTT(P1, R1, 1), ctl.Exit(P1, P2, Atom("boom")), ctl.ExitTT(P1, P2, 1, Atom("boom")),
    ctl.Exit2(P1, P2, Atom("kill")), ctl.Exit2TT(P1, P2, 1, Atom("kill")), ctl.PayloadExit(P1, P2),
    ctl.PayloadExitTT(P1, P2, 1), ctl.PayloadExit2(P1, P2), ctl.PayloadExit2TT(P1, P2, 1),
    ctl.MonitorP(P1, P2, R1), ctl.MonitorP(P1, Atom("name"), R1), ctl.DemonitorP(P1, P2, R1),
    ctl.MonitorPExit(P2, P1, R1, Atom("normal")), ctl.PayloadMonitorPExit(Atom("n"), P1, R1),
])
def test_control_roundtrip_through_the_codec(msg):
    term = msg.term()
    assert term[0] == msg.OP
    back, _ = decode(encode(term))
    assert ctl.parse(back) == msg


def test_op_codes():
    assert (ctl.Link.OP, ctl.Send.OP, ctl.Exit.OP, ctl.RegSend.OP, ctl.Exit2.OP, ctl.MonitorP.OP,
            ctl.DemonitorP.OP, ctl.MonitorPExit.OP, ctl.SendSender.OP) == (1, 2, 3, 6, 8, 19, 20, 21, 22)
    assert (ctl.PayloadExit.OP, ctl.PayloadExitTT.OP, ctl.PayloadExit2.OP, ctl.PayloadExit2TT.OP,
            ctl.PayloadMonitorPExit.OP) == (24, 25, 26, 27, 28)
    assert (ctl.AliasSend.OP, ctl.AliasSendTT.OP, ctl.UnlinkId.OP, ctl.UnlinkIdAck.OP) == (33, 34, 35, 36)


def test_unknown_and_malformed_ops_are_ignored():
    assert ctl.parse((29, 1, 2, 3)) is None  # SPAWN_REQUEST: we do not serve spawns
    assert ctl.parse((99,)) is None
    assert ctl.parse(Atom("x")) is None
    assert ctl.parse((1,)) is None


# --- the reply fast path -------------------------------------------------------------------


def test_wire_pid_and_ref_match_the_codec():
    assert wire.pid(P2) == encode(P2)[1:]
    r = Reference(Atom(ME), 4, (5, 6, 7))
    assert wire.ref(r) == encode(r)[1:]


def test_send_target_finds_the_destination_without_decoding():
    msg = encode((R1, Atom("ok")))
    for c in (ctl.SendSender(P1, P2), ctl.Send(P2)):
        frame = b"p" + encode(c.term()) + msg
        key, off = wire.send_target(frame)
        assert key == wire.pid(P2) and frame[off:] == msg
    assert wire.send_target(b"p" + encode(ctl.Link(P1, P2).term())) is None
    assert wire.send_target(b"p\x83h\x03a\x16X") is None  # truncated: no IndexError escapes


# --- small helpers --------------------------------------------------------------------------


def test_chardata_flattening():
    assert chardata_to_str(["h", [233, b"llo"], ImproperList(("x",), b"!")]) == "héllo" + "x!"
    assert chardata_to_str(b"h\xc3\xa9") == "hé"
    assert chardata_to_str(b"h\xe9", "latin1") == "hé"
    with pytest.raises(ValueError):
        chardata_to_str((1, 2))


def test_node_names():
    assert split_node("a@b.c") == ("a", "b.c")
    for bad in ("a", "@b", "a@", "a@b@c"):
        with pytest.raises(UsageError):
            split_node(bad)
    assert is_long_host("127.0.0.1") and is_long_host("x.example.com") and not is_long_host("vm")
    assert own_host(True, "127.0.0.1") == "127.0.0.1"
    assert "." not in own_host(False)


async def test_deadlines_fire_in_order_and_removed_ones_never():
    loop = asyncio.get_running_loop()
    fired = []

    class Item:
        def __init__(self, n):
            self.n = n

        def expired(self):
            fired.append(self.n)

    d = Deadlines(loop)
    items = [Item(i) for i in range(5)]
    for it in items:
        d.add(0.05, it)
    d.add(0.02, Item("short"))
    d.remove(items[1])
    await asyncio.sleep(0.15)
    assert fired == ["short", 0, 2, 3, 4]
    assert len(d) == 0
    d.close()
