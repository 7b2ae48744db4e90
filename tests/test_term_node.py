"""Terms built by a real node decode to the expected Python values, and our
re-encoding of them is =:= the original on the node."""

from __future__ import annotations

import pytest

from pyrlang_deploy.term import (
    Atom,
    BitString,
    ExportFun,
    ImproperList,
    LocalFun,
    MapKey,
    Pid,
    Port,
    Reference,
    decode,
    encode,
    format_term,
)
from tests.support.oracle import same_term

NONODE = Atom("nonode@nohost")

# (Erlang expression, expected Python value)
CASES = [
    # integers: small, 32-bit edges, bigs both signs, a LARGE_BIG
    ("0", 0),
    ("255", 255),
    ("256", 256),
    ("-1", -1),
    ("2147483647", 2147483647),
    ("-2147483648", -2147483648),
    ("2147483648", 2147483648),
    ("1 bsl 200", 1 << 200),
    ("-(1 bsl 64)", -(1 << 64)),
    ("1 bsl 3000", 1 << 3000),
    ("-(1 bsl 3000) + 7", -(1 << 3000) + 7),
    # floats
    ("0.1", 0.1),
    ("-0.0", -0.0),
    ("1.0e300", 1.0e300),
    ("5.0e-324", 5.0e-324),
    ("-1.7976931348623157e308", -1.7976931348623157e308),
    # atoms, including latin-1 and non-latin-1 names
    ("ok", Atom("ok")),
    ("''", Atom("")),
    ("'é'", Atom("é")),
    ("'日本'", Atom("日本")),
    ("'Hello World'", Atom("Hello World")),
    ("true", True),
    ("false", False),
    ("undefined", Atom("undefined")),
    ("list_to_atom(lists:duplicate(255, $x))", Atom("x" * 255)),
    ("list_to_atom(lists:duplicate(255, 26085))", Atom("日" * 255)),
    # charlists and lists
    ('""', []),
    ('"abc"', "abc"),
    ('"a\\nb\\te"', "a\nb\te"),
    ('"é"', "é"),
    ('"日本"', "日本"),
    ('"😀 ok"', "😀 ok"),
    ("[16#10FFFF]", "\U0010ffff"),
    ("[104, 105]", "hi"),
    ("[0]", [0]),
    ("[1, 2, 3]", [1, 2, 3]),
    ("[55296]", [55296]),
    ("[256, 7]", [256, 7]),
    ("[-1]", [-1]),
    ("[1 bsl 40]", [1 << 40]),
    ("lists:seq(1, 70000)", list(range(1, 70001))),
    ("lists:duplicate(70000, $a)", "a" * 70000),
    ("[a, [b, []], {c}]", [Atom("a"), [Atom("b"), []], (Atom("c"),)]),
    ("[true, false]", [True, False]),
    ("[1, 2 | 3]", ImproperList((1, 2), 3)),
    ("[a | b]", ImproperList((Atom("a"),), Atom("b"))),
    ("[$a | <<\"b\">>]", ImproperList((97,), b"b")),
    # binaries and bitstrings
    ("<<>>", b""),
    ('<<"bin">>', b"bin"),
    ('<<"é"/utf8>>', "é".encode()),
    ("<<0, 255, 128>>", b"\x00\xff\x80"),
    ("<<1:3>>", BitString(b"\x20", 3)),
    ("<<1, 2, 5:3>>", BitString(b"\x01\x02\xa0", 3)),
    ("<<255:7>>", BitString(b"\xfe", 7)),
    ("binary:copy(<<\"x\">>, 100000)", b"x" * 100000),
    # tuples
    ("{}", ()),
    ("{a, 1, \"s\", <<\"b\">>}", (Atom("a"), 1, "s", b"b")),
    ("list_to_tuple(lists:seq(1, 300))", tuple(range(1, 301))),
    # maps: small, nested, over 32 keys (hash-ordered on the wire), awkward keys
    ("#{}", {}),
    ('#{a => 1, "b" => [2], {c} => #{d => e}}',
     {Atom("a"): 1, "b": [2], (Atom("c"),): {Atom("d"): Atom("e")}}),
    ("maps:from_list([{I, I * I} || I <- lists:seq(1, 40)])", {i: i * i for i in range(1, 41)}),
    ("maps:from_list([{integer_to_binary(I), {I}} || I <- lists:seq(1, 100)])",
     {str(i).encode(): (i,) for i in range(1, 101)}),
    ("#{[1, 2] => x, #{k => v} => y}", {MapKey([1, 2]): Atom("x"), MapKey({Atom("k"): Atom("v")}): Atom("y")}),
    ("#{1 => a, 1.0 => b}", {MapKey(1): Atom("a"), MapKey(1.0): Atom("b")}),
    ("#{a => 1, \"a\" => 2}", {MapKey(Atom("a")): 1, MapKey("a"): 2}),
    # funs, pids, refs, ports with known fields
    ("fun lists:map/2", ExportFun(Atom("lists"), Atom("map"), 2)),
    ("fun 'é':'日'/0", ExportFun(Atom("é"), Atom("日"), 0)),
    ('list_to_pid("<0.55.3>")', Pid(NONODE, 55, 3, 0)),
    ('binary_to_term(<<131,88,119,3,"a@b",0,0,0,42,0,0,0,1,0,0,0,7>>)', Pid(Atom("a@b"), 42, 1, 7)),
    ('binary_to_term(<<131,90,0,5,119,3,"a@b",0,0,0,7,0,0,0,1,0,0,0,2,0,0,0,3,0,0,0,4,0,0,0,5>>)',
     Reference(Atom("a@b"), 7, (1, 2, 3, 4, 5))),
    ('binary_to_term(<<131,89,119,3,"a@b",0,0,0,9,0,0,0,7>>)', Port(Atom("a@b"), 9, 7)),
    ('binary_to_term(<<131,120,119,3,"a@b",0,0,0,1,0,0,0,2,0,0,0,7>>)', Port(Atom("a@b"), (1 << 32) + 2, 7)),
]


@pytest.mark.parametrize("expr, expected", CASES, ids=[c[0][:40] for c in CASES])
def test_node_term_decodes_and_reencodes(oracle, expr, expected):
    plain, compressed = oracle.eval(expr + ".")
    value, end = decode(plain)
    assert end == len(plain)
    assert same_term(value, expected), f"{expr}: got {value!r}"
    packed_value, end = decode(compressed)
    assert end == len(compressed)
    assert same_term(packed_value, expected)
    # Our encoding of the decoded value is the same Erlang term, and so is our
    # encoding of the value we expected (the mapping is symmetric).
    assert oracle.equal(encode(value), plain)
    assert oracle.equal(encode(expected), plain)
    assert oracle.equal(encode(value, compressed=True), plain)


def test_old_float_format_and_latin1_atoms(oracle):
    # minor_version 0 writes FLOAT_EXT (the 31-byte text float) and ATOM_EXT.
    plain, _ = oracle.eval("term_to_binary({1.5, -0.1, 1.0e300, 'é'}, [{minor_version, 0}]).")
    data, _ = decode(plain)
    assert 99 in data  # FLOAT_EXT tag present
    value, _ = decode(data)
    assert same_term(value, (1.5, -0.1, 1.0e300, Atom("é")))


def test_utf8_atom_encoding_of_minor_version_2(oracle):
    plain, _ = oracle.eval("term_to_binary({'é', '日本', ok}, [{minor_version, 2}]).")
    data, _ = decode(plain)
    assert data[1:3] == bytes((104, 3)) and data[3] == 119
    value, _ = decode(data)
    assert same_term(value, (Atom("é"), Atom("日本"), Atom("ok")))


def test_self_pid_and_its_text(oracle):
    plain, _ = oracle.eval("P = self(), {P, pid_to_list(P)}.")
    (pid, text), _ = decode(plain)
    assert type(pid) is Pid and pid.node == NONODE and pid.creation == 0
    assert format_term(pid, node="nonode@nohost") == text
    assert format_term(pid) == f"<nonode@nohost.{pid.id}.{pid.serial}>"
    assert oracle.equal(encode(pid), oracle.eval("self().")[0])


@pytest.mark.parametrize("expr", ["make_ref()", "alias()", "erlang:monitor(process, self())"])
def test_references_and_their_text(oracle, expr):
    plain, _ = oracle.eval(f"R = {expr}, {{R, ref_to_list(R), term_to_binary(R, [{{minor_version, 2}}])}}.")
    (ref, text, ref_bytes), _ = decode(plain)
    assert type(ref) is Reference and ref.node == NONODE
    assert ref_bytes[1] == 90  # NEWER_REFERENCE from OTP 25 on
    assert format_term(ref, node="nonode@nohost") == text
    assert encode(ref) == ref_bytes  # byte for byte
    assert oracle.equal(encode(ref), ref_bytes)


def test_port_and_its_text(oracle):
    plain, _ = oracle.eval("P = hd(erlang:ports()), {P, erlang:port_to_list(P), term_to_binary(P, [{minor_version, 2}])}.")
    (port, text, port_bytes), _ = decode(plain)
    assert type(port) is Port and port.node == NONODE
    assert format_term(port, node="nonode@nohost") == text
    if port_bytes[1] == 120:
        # OTP 28 writes every port as V4_PORT_EXT (64-bit id); ours is the same port
        # as NEW_PORT_EXT while the id fits in 32 bits, which every OTP 25+ reads
        assert oracle.equal(encode(port), port_bytes)
    else:
        assert encode(port) == port_bytes


def test_local_fun_is_opaque_and_goes_back_unchanged(oracle):
    plain, compressed = oracle.eval("X = 41, F = fun(Y) -> X + Y end, {F, erlang:fun_to_list(F)}.")
    (fun, text), _ = decode(plain)
    assert type(fun) is LocalFun and fun.module == Atom("erl_eval") and fun.arity == 1
    assert format_term(fun) == text  # #Fun<erl_eval.N.M>
    assert decode(compressed)[0][0] == fun
    # The node still sees the same closure (same env) in what we send back.
    assert oracle.equal(encode((fun, text)), plain)
    applied, _ = oracle.eval("F(1).", F=fun)
    assert decode(applied)[0] == 42


def test_compressed_big_term(oracle):
    plain, compressed = oracle.eval("[{I, integer_to_list(I), <<\"bin\">>} || I <- lists:seq(1, 5000)].")
    assert compressed[1] == 80 and len(compressed) < len(plain)
    expected = [(i, str(i), b"bin") for i in range(1, 5001)]
    assert same_term(decode(compressed)[0], expected)
    ours = encode(expected, compressed=True)
    assert ours[1] == 80
    assert oracle.equal(ours, plain)
    assert oracle.equal(encode(expected, compressed=1), plain)


def test_two_terms_back_to_back():
    first, second = encode((Atom("a"), 1)), encode([b"x", "y"], compressed=True)
    buffer = b"junk" + first + second + encode(7, compressed=True)
    value, offset = decode(buffer, 4)
    assert value == (Atom("a"), 1) and offset == 4 + len(first)
    value, offset = decode(memoryview(buffer), offset)
    assert value == [b"x", "y"] and offset == 4 + len(first) + len(second)
    value, offset = decode(bytearray(buffer), offset)
    assert value == 7 and offset == len(buffer)


def test_printable_charlists_match_io_lib(oracle):
    """A one-element list decodes as str exactly when io_lib:printable_unicode_list/1 says so."""
    points = list(range(0, 0x800)) + [
        0xD7FF, 0xD800, 0xDFFF, 0xE000, 0xFFFD, 0xFFFE, 0xFFFF, 0x10000, 0x10FFFF, 0x110000,
        0x2028, 0x200B, 0xFEFF, 0xE000, 0xF8FF, 0x0378,
    ]
    verdicts_bytes, _ = oracle.eval("[io_lib:printable_unicode_list([C]) || C <- Cs].", Cs=points)
    verdicts = decode(verdicts_bytes)[0]
    for point, printable in zip(points, verdicts):
        value = decode(encode([point]))[0]
        assert (type(value) is str) is printable, hex(point)
        # and the node's own encoding decodes the same way
    node_lists, _ = oracle.eval("[[C] || C <- Cs].", Cs=points)
    for point, printable, value in zip(points, verdicts, decode(node_lists)[0]):
        assert (type(value) is str) is printable, hex(point)
