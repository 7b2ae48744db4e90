"""A peer cannot make the controller allocate, hang or flood (issue 10).

A fake epmd and a fake node (tests/support/fake_peer.py, asyncio on loopback)
lie in the ways seen on this code; `erldeploy rpc` runs against them as a real
process, and each test asserts its peak memory (the child's ru_maxrss from
wait4), its wall time and its one line of output. Before the fixes these runs
used gigabytes, ran to the timeout or printed tens of thousands of lines.

Every test runs twice, once per driver of the distribution client: the blocking
one the CLI takes for one plain-TCP node (erldist/blocking.py) and the asyncio
one (ERLDEPLOY_NO_FAST=1 sends the command down the click path, onto LocalNode).
"""

from __future__ import annotations

import asyncio
import functools
import os
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time
import zlib
from pathlib import Path

import pytest

from pyrlang_deploy.term import Atom, encode
from tests.support.fake_peer import FakePeer, frame, reply_frame

PEAK_RSS = str(Path(__file__).parent / "support" / "peak_rss.py")
MIB = 1 << 20
# Python, asyncclick and the package take ~45 MB here; every hostile run must stay
# within a small multiple of that (before: 3.2 to 6.3 GB).
RSS_LIMIT = 160 * MIB
WALL_LIMIT = 10.0  # seconds; the runs use --timeout 20, so a hang shows as a failure


@pytest.fixture(autouse=True, params=["blocking", "asyncio"])
def driver(request, monkeypatch):
    if request.param == "asyncio":
        monkeypatch.setenv("ERLDEPLOY_NO_FAST", "1")
    else:
        monkeypatch.delenv("ERLDEPLOY_NO_FAST", raising=False)
    return request.param


class Run:
    def __init__(self, rc: int, out: str, err: str, wall: float, rss: int) -> None:
        self.rc, self.out, self.err, self.wall, self.rss = rc, out, err, wall, rss

    @property
    def lines(self) -> list[str]:
        return self.err.strip().splitlines()


def cli(fp: FakePeer, *args: str, env: dict | None = None, kill_after: float = 60.0) -> Run:
    """`erldeploy ARGS -n <fake node>`, with its peak RSS (tests/support/peak_rss.py)."""
    # ERLDEPLOY_SYNTAX: the fake node answers the call under test, not the syntax probe
    e = {**os.environ, "ERLDEPLOY_COOKIE": fp.cookie, "ERL_EPMD_PORT": str(fp.epmd_port),
         "HOME": "/nonexistent", "ERLDEPLOY_SYNTAX": "erlang", **(env or {})}
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err, \
            tempfile.NamedTemporaryFile("r") as peak:
        cmd = [sys.executable, PEAK_RSS, peak.name, "-m", "pyrlang_deploy.cli.main", *args, "-n", fp.node_name]
        t0 = time.monotonic()
        p = subprocess.Popen(cmd, stdout=out, stderr=err, env=e, start_new_session=True)
        timer = threading.Timer(kill_after, lambda: os.killpg(p.pid, signal.SIGKILL))
        timer.start()
        try:
            rc = p.wait()
        finally:
            timer.cancel()
        wall = time.monotonic() - t0
        out.seek(0)
        err.seek(0)
        rss = int(peak.read() or 0)
        run = Run(rc, out.read().decode(errors="replace"), err.read().decode(errors="replace"), wall, rss)
    assert rss > 0, "the CLI did not report its peak RSS (killed?)"
    assert "Traceback" not in run.err, run.err[-2000:]
    return run


def assert_bounded(run: Run, rss: int = RSS_LIMIT, wall: float = WALL_LIMIT) -> None:
    print(f"peak RSS {run.rss / MIB:.0f} MiB, wall {run.wall:.2f}s, exit {run.rc}")  # seen with -s
    assert run.rss < rss, f"peak RSS {run.rss / MIB:.0f} MiB"
    assert run.wall < wall, f"took {run.wall:.1f}s"


async def stream(writer: asyncio.StreamWriter, total: int, chunk: bytes) -> None:
    sent = 0
    while sent < total:
        writer.write(chunk)
        await writer.drain()
        sent += len(chunk)


# --- epmd ----------------------------------------------------------------------------------

async def endless_epmd(req: bytes, writer: asyncio.StreamWriter, fp: FakePeer) -> None:
    writer.write(b"w\x00")
    await stream(writer, 4 << 30, b"\x00" * (1 << 16))


def test_an_epmd_that_streams_without_end_is_cut_off():
    with FakePeer(epmd=endless_epmd) as fp:
        run = cli(fp, "rpc", "--timeout", "20", "erlang", "node")
    assert run.rc == 3 and len(run.lines) == 1, run.err
    assert "epmd on 127.0.0.1" in run.err and "sent more than" in run.err
    assert_bounded(run)


# --- frames ---------------------------------------------------------------------------------

async def four_gib_frame(reader, writer, call) -> None:
    writer.write(b"\xff\xff\xff\xff")
    await stream(writer, 1536 * MIB, b"\x00" * MIB)


def test_a_frame_claiming_4_gib_drops_the_connection_at_once():
    with FakePeer(node=four_gib_frame) as fp:
        run = cli(fp, "rpc", "--timeout", "20", "erlang", "node")
    assert run.rc == 1 and len(run.lines) == 1, run.err
    assert fp.node_name in run.err
    assert "sent a frame of 4294967295 bytes, over the 67108864 byte limit" in run.err
    assert_bounded(run)


async def reply_5000_byte_binary(reader, writer, call) -> None:
    writer.write(reply_frame(call, b"m" + struct.pack(">I", 5000) + b"x" * 5000))
    await asyncio.sleep(5)


def test_the_frame_limit_is_configurable():
    with FakePeer(node=reply_5000_byte_binary) as fp:
        ok = cli(fp, "rpc", "--timeout", "20", "erlang", "node")
        small = cli(fp, "rpc", "--timeout", "20", "erlang", "node", env={"ERLDEPLOY_MAX_FRAME": "4096"})
    assert ok.rc == 0 and ok.out.strip() == '<<"' + "x" * 5000 + '">>', ok.err
    assert small.rc == 1 and len(small.lines) == 1 and "over the 4096 byte limit" in small.err, small.err
    assert_bounded(small)


async def garbage_frames(reader, writer, call) -> None:
    junk = frame(b"p\x83\xff\xfe garbage")
    writer.write(junk * 20_001)
    await writer.drain()
    await asyncio.sleep(5)


def test_the_first_undecodable_frame_ends_the_connection_with_one_line():
    with FakePeer(node=garbage_frames) as fp:
        run = cli(fp, "rpc", "--timeout", "20", "erlang", "node")
    assert run.rc == 1 and run.out == "", run.out
    assert len(run.lines) == 1, run.err[:2000]
    assert "sent a frame we cannot read" in run.err and fp.node_name in run.err
    assert_bounded(run)


# --- compressed terms (tag 80) ---------------------------------------------------------------

@functools.lru_cache(maxsize=1)
def _deflated_zeros() -> bytes:
    """256 MiB of zeros as raw deflate blocks (the bulk of the bomb), made once,
    before any CLI starts, so the CLI's wall time is its own."""
    z = zlib.compressobj(9, zlib.DEFLATED, -15)
    zeros = bytes(MIB)
    return b"".join([*(z.compress(zeros) for _ in range(256)), z.flush()])


def bomb_message(head: bytes) -> bytes:
    """A tag-80 term: ``head`` then 256 MiB of zeros, one valid zlib stream of ~261 KB."""
    z = zlib.compressobj(9, zlib.DEFLATED, -15)
    first = z.compress(head) + z.flush(zlib.Z_FULL_FLUSH)  # byte-aligned, no history kept
    adler = zlib.adler32(head)
    zeros = bytes(MIB)
    for _ in range(256):
        adler = zlib.adler32(zeros, adler)
    stream = b"\x78\xda" + first + _deflated_zeros() + struct.pack(">I", adler)
    return b"\x83P" + struct.pack(">I", len(head) + 256 * MIB) + stream


def test_the_bomb_is_a_real_zlib_stream():
    """Without the limit it would inflate to all 256 MiB (checked in slices, checksum included)."""
    d = zlib.decompressobj()
    data = bomb_message(b"head")[6:]
    total, first = 0, b""
    while data:
        out = d.decompress(data, 8 * MIB)
        first = first or out[:4]
        total += len(out)
        data = d.unconsumed_tail
    total += len(d.flush())
    assert d.eof and first == b"head" and total == 4 + 256 * MIB


async def zip_bomb(reader, writer, call) -> None:
    # {Ref, <<0:256/unit:8-MiB>>} as one compressed term: 261 KB on the wire
    head = b"h\x02" + encode(call.ref)[1:] + b"m" + struct.pack(">I", 256 * MIB)
    msg = bomb_message(head)
    assert len(msg) < 300_000
    writer.write(frame(b"p" + encode((2, Atom(""), call.pid)) + msg))
    await asyncio.sleep(5)


def test_a_compressed_bomb_is_refused_by_its_inflated_size():
    _deflated_zeros()
    with FakePeer(node=zip_bomb) as fp:
        run = cli(fp, "rpc", "--timeout", "20", "erlang", "node")
    assert run.rc == 1 and len(run.lines) == 1 and run.out == "", run.err
    assert "over the 67108864 byte limit" in run.err and fp.node_name in run.err
    assert_bounded(run)


def test_the_inflated_limit_is_the_frame_limit():
    """A compressed reply of 5000 bytes inflated: fine by default, refused under a 4 KiB limit."""

    async def small_bomb(reader, writer, call) -> None:
        writer.write(reply_frame(call, b"m" + struct.pack(">I", 5000) + bytes(5000), compressed=True))
        await asyncio.sleep(5)

    with FakePeer(node=small_bomb) as fp:
        ok = cli(fp, "rpc", "--timeout", "20", "erlang", "node")
        small = cli(fp, "rpc", "--timeout", "20", "erlang", "node", env={"ERLDEPLOY_MAX_FRAME": "4096"})
    assert ok.rc == 0 and ok.out.startswith("<<0,0,0"), ok.err
    assert small.rc == 1 and "over the 4096 byte limit" in small.err, small.err
    assert len(zlib.compress(bytes(5000))) < 4096  # the frame itself was small


# --- deep replies ------------------------------------------------------------------------------

def deep_list(depth: int) -> bytes:
    """[[[...[]...]]] nested ``depth`` deep, encoded by hand (LIST_EXT of one, NIL tails)."""
    return b"l\x00\x00\x00\x01" * depth + b"j" + b"j" * depth


@pytest.mark.parametrize("depth", [1000, 1_000_000])
@pytest.mark.parametrize("json_mode", [False, True], ids=["text", "json"])
def test_a_deeply_nested_reply_prints(depth, json_mode):
    async def deep(reader, writer, call) -> None:
        writer.write(reply_frame(call, deep_list(depth)))
        await asyncio.sleep(10)

    with FakePeer(node=deep) as fp:
        args = ["rpc", "--timeout", "20", *(["--json"] if json_mode else []), "erlang", "node"]
        run = cli(fp, *args)
    assert run.rc == 0 and run.err == "", run.err[-2000:]
    text = "[" * (depth + 1) + "]" * (depth + 1)  # depth lists around the innermost []
    if json_mode:
        assert '"term": "' + text + '"' in run.out  # Erlang syntax beside the JSON value
        assert '"result":' + text + "," in "".join(run.out.split())  # the JSON value itself
    else:
        assert run.out.strip() == text
    # a million Python lists (and their JSON copy) are most of this
    if depth <= 1000:
        assert_bounded(run)
    else:
        assert_bounded(run, rss=600 * MIB, wall=60.0)
