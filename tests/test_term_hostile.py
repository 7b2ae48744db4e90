"""Hostile input: every malformed byte string raises one DecodeError, quickly,
without allocating more than the input justifies and without touching the
Python stack limit."""

from __future__ import annotations

import struct
import time
import tracemalloc
import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pyrlang_deploy.errors import DecodeError
from pyrlang_deploy.term import Atom, BitString, ImproperList, Pid, Port, Reference, decode, encode

U32_MAX = 0xFFFFFFFF


def u32(n: int) -> bytes:
    return struct.pack(">I", n)


RICH = encode(
    {
        Atom("k"): [1, 300, -5, 1 << 100, 1.5, "héllo", "日本", b"bin", BitString(b"\xe0", 3)],
        (Atom("t"), ()): ImproperList((1,), Atom("tail")),
        "s": (Pid(Atom("a@b"), 1, 2, 3), Reference(Atom("a@b"), 4, (5, 6, 7)), Port(Atom("a@b"), 8, 9)),
    }
)


def assert_rejected(data: bytes, max_bytes: int = 1 << 20) -> DecodeError:
    """DecodeError (and nothing else), with a small peak allocation."""
    tracemalloc.start()
    try:
        with pytest.raises(DecodeError) as info:
            decode(data)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < max_bytes, f"peak allocation {peak} bytes"
    assert "\n" not in str(info.value)
    return info.value


@pytest.mark.parametrize(
    "name, data",
    [
        ("list of 2^32-1 elements in 10 bytes", b"\x83l" + u32(U32_MAX) + b"a\x01a\x02"),
        ("large tuple of 2^32-1", b"\x83i" + u32(U32_MAX) + b"a\x01"),
        ("map of 2^32-1 pairs", b"\x83t" + u32(U32_MAX) + b"a\x01a\x02"),
        ("binary of 4 GiB", b"\x83m" + u32(U32_MAX) + b"abc"),
        ("bitstring of 4 GiB", b"\x83M" + u32(U32_MAX) + b"\x03abc"),
        ("big of 4 GiB", b"\x83o" + u32(U32_MAX) + b"\x00\x01"),
        ("small big past the end", b"\x83n\xff\x00\x01\x02"),
        ("string of 65535 in 3 bytes", b"\x83k\xff\xffabc"),
        ("atom of 65535 in 3 bytes", b"\x83v\xff\xffabc"),
        ("latin-1 atom past the end", b"\x83d\x00\x10ok"),
        ("small atom past the end", b"\x83w\x05ok"),
        ("fun claiming 4 GiB", b"\x83p" + u32(U32_MAX) + b"\x01" + b"\x00" * 30),
        ("fun too short for its header", b"\x83p" + u32(8) + b"\x01" + b"\x00" * 30),
        ("reference with 65535 words", b"\x83Z\xff\xffw\x01a" + u32(0) + u32(1)),
        ("reference with no words", b"\x83Z\x00\x00w\x01a" + u32(0)),
        ("pid truncated", b"\x83Xw\x03a@b\x00\x00"),
        ("compressed, claims 4 GiB", b"\x83P" + u32(U32_MAX) + zlib.compress(b"a\x01")),
        ("compressed, claims 0", b"\x83P" + u32(0) + zlib.compress(b"a\x01")),
        ("compressed, claims less", b"\x83P" + u32(1) + zlib.compress(b"a\x01")),
        ("compressed, claims more", b"\x83P" + u32(3) + zlib.compress(b"a\x01")),
        ("compressed, garbage", b"\x83P" + u32(2) + b"not zlib at all"),
        ("compressed, truncated", b"\x83P" + u32(2000) + zlib.compress(b"l" + u32(998) + b"a\x01" * 998 + b"j")[:-6]),
        ("compressed, trailing bytes inside", b"\x83P" + u32(3) + zlib.compress(b"a\x01j")),
        ("compressed inside a term", b"\x83h\x01P" + u32(2) + zlib.compress(b"a\x01")),
        ("atom of 256 characters", b"\x83v\x01\x00" + b"a" * 256),
        ("latin-1 atom of 256 characters", b"\x83d\x01\x00" + b"a" * 256),
        ("invalid UTF-8 atom", b"\x83w\x02\xc3\x28"),
        ("invalid UTF-8 long atom", b"\x83v\x00\x02\xff\xfe"),
        ("surrogate in UTF-8 atom", b"\x83w\x03\xed\xa0\x80"),
        ("ATOM_CACHE_REF", b"\x83R\x00"),
        ("LOCAL_EXT", b"\x83y" + b"\x00" * 20),
        ("unknown tag", b"\x83\x01"),
        ("wrong version byte", b"\x82a\x01"),
        ("empty", b""),
        ("version only", b"\x83"),
        ("NaN float", b"\x83F" + struct.pack(">d", float("nan"))),
        ("infinite float", b"\x83F" + struct.pack(">d", float("inf"))),
        ("text float 'nan'", b"\x83c" + b"nan".ljust(31, b"\0")),
        ("text float '1e999'", b"\x83c" + b"1e999".ljust(31, b"\0")),
        ("text float with underscore", b"\x83c" + b"1_0.5".ljust(31, b"\0")),
        ("text float truncated", b"\x83c1.5"),
        ("bitstring with 0 bits", b"\x83M" + u32(1) + b"\x00\xff"),
        ("bitstring with 9 bits", b"\x83M" + u32(1) + b"\x09\xff"),
        ("empty bitstring with bits", b"\x83M" + u32(0) + b"\x03"),
        ("big with sign 2", b"\x83n\x01\x02\x05"),
        ("map with a duplicate key", b"\x83t" + u32(2) + b"a\x01a\x02a\x01a\x03"),
        ("export with a non-atom module", b"\x83qa\x01w\x01fa\x01"),
        ("export with a big arity", b"\x83qw\x01mw\x01fb" + u32(1)),
        ("pid with a non-atom node", b"\x83Xa\x01" + u32(1) * 3),
    ],
)
def test_malformed_input_is_one_decode_error(name, data):
    assert_rejected(data)


def test_every_truncation_of_a_rich_term_is_rejected():
    assert decode(RICH)[1] == len(RICH)
    for cut in range(len(RICH)):
        assert_rejected(RICH[:cut])
    packed = encode([RICH] * 20, compressed=True)
    assert packed[1] == 80
    for cut in range(len(packed)):
        assert_rejected(packed[:cut])


@settings(max_examples=2000, deadline=None)
@given(st.binary(max_size=64))
def test_random_bytes_decode_or_raise_decode_error(noise):
    for data in (b"\x83" + noise, b"\x83" + noise[:1] + b"\x00\x00" + noise[1:]):
        try:
            decode(data)
        except DecodeError:
            pass


@settings(max_examples=2000, deadline=None)
@given(st.integers(0, len(RICH) - 1), st.integers(0, 255), st.integers(0, 3))
def test_corrupted_rich_term_decodes_or_raises_decode_error(index, byte, extra):
    data = bytearray(RICH)
    data[index] = byte
    if extra:
        data[(index * 7 + extra) % len(data)] ^= 0xFF
    try:
        decode(bytes(data))
    except DecodeError:
        pass


def _nested_lists(depth: int) -> bytes:
    return b"\x83" + (b"l" + u32(1)) * depth + b"j" + b"j" * depth


def test_million_nested_lists_decode_without_recursion():
    depth = 1_000_000
    start = time.perf_counter()
    value, end = decode(_nested_lists(depth))
    elapsed = time.perf_counter() - start
    assert end == 6 * depth + 2
    levels = 0
    while value:  # walk it iteratively: [[[...]]]
        (value,) = value
        levels += 1
    assert levels == depth
    assert elapsed < 30


def test_million_nested_tuples_round_trip():
    depth = 1_000_000
    data = b"\x83" + b"h\x01" * depth + b"j"
    value, end = decode(data)
    assert end == len(data)
    assert encode(value) == data  # the encoder is iterative too


def test_deep_maps_and_improper_lists_round_trip():
    depth = 100_000
    maps = b"\x83" + (b"t" + u32(1) + b"w\x01k") * depth + b"j"
    value, _ = decode(maps)
    assert encode(value) == maps
    improper = b"\x83" + (b"l" + u32(1) + b"a\x01") * depth + b"w\x01t"
    value, _ = decode(improper)
    assert type(value) is ImproperList and value.tail == Atom("t")
    assert len(value.elements) == depth  # [1|[1|...|t]] is one flat improper list


def test_lying_list_needs_no_memory_for_its_claim():
    # 2^32-1 elements claimed, 2 MB present: rejected before anything is built.
    data = b"\x83l" + u32(U32_MAX) + b"a\x01" * 1_000_000 + b"j"
    assert_rejected(data, max_bytes=64 * 1024)


def test_compressed_bomb_is_bounded_by_its_input():
    # 100 MB of zeros compress to ~100 kB; declaring 200 MB is more than deflate can give
    # from that input, so it is refused before inflating anything.
    packed = zlib.compress(b"\x00" * 1_000_000, 9)
    bomb = b"\x83P" + u32(200 * 1024 * 1024) + packed
    assert_rejected(bomb, max_bytes=1 << 20)
