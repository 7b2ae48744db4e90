"""format_term (Erlang syntax out) and parse_term (term literals in)."""

from __future__ import annotations

import pytest

from pyrlang_deploy.errors import EncodeError, TermSyntaxError
from pyrlang_deploy.term import (
    Atom,
    BitString,
    ExportFun,
    ImproperList,
    MapKey,
    Pid,
    Port,
    Reference,
    decode,
    encode,
    format_term,
    parse_term,
)
from tests.support.oracle import same_term


@pytest.mark.parametrize(
    "term, text",
    [
        (Atom("ok"), "ok"),
        (Atom("Hello"), "'Hello'"),
        (Atom("a b"), "'a b'"),
        (Atom("a@b_1"), "a@b_1"),
        (Atom("é"), "é"),
        (Atom("日本"), "'日本'"),
        (Atom("it's"), "'it\\'s'"),
        (Atom("end"), "'end'"),
        (Atom(""), "''"),
        (Atom("a\nb"), "'a\\nb'"),
        (True, "true"),
        (None, "undefined"),
        ("abc", '"abc"'),
        ('say "hi"\\', '"say \\"hi\\"\\\\"'),
        ("é日本", '"é日本"'),
        ("\x01", '"\\x{1}"'),
        ("a\ud800", "[97,55296]"),
        ("", "[]"),
        ([], "[]"),
        ([1, 2, 3], "[1,2,3]"),
        (b"", "<<>>"),
        (b"text", '<<"text">>'),
        (b"a\nb", '<<"a\\nb">>'),
        ("é".encode(), '<<"é"/utf8>>'),
        (b"\x00\xff", "<<0,255>>"),
        (BitString(b"\x20", 3), "<<1:3>>"),
        (BitString(b"\x01\x02\xa0", 3), "<<1,2,5:3>>"),
        ((), "{}"),
        ((Atom("ok"), 1), "{ok,1}"),
        ({}, "#{}"),
        ({Atom("a"): 1, "b": [2]}, '#{a => 1,"b" => [2]}'),
        ({MapKey([1]): 2}, "#{[1] => 2}"),
        (ImproperList((1, 2), Atom("t")), "[1,2|t]"),
        (1.0, "1.0"),
        (0.1, "0.1"),
        (-0.0, "-0.0"),
        (1.5e300, "1.5e300"),
        (1000.0, "1.0e3"),
        (100.0, "100.0"),
        (1 << 70, "1180591620717411303424"),
        (-5, "-5"),
        (ExportFun(Atom("lists"), Atom("map"), 2), "fun lists:map/2"),
        (ExportFun(Atom("My"), Atom("f"), 0), "fun 'My':f/0"),
        (Pid(Atom("a@h"), 85, 0, 1), "<a@h.85.0>"),
        (Reference(Atom("a@h"), 1, (3, 2, 1)), "#Ref<a@h.1.2.3>"),
        (Port(Atom("a@h"), 5, 1), "#Port<a@h.5>"),
    ],
)
def test_format_term(term, text):
    assert format_term(term) == text


def test_local_node_forms():
    pid, ref, port = Pid(Atom("a@h"), 85, 2, 1), Reference(Atom("a@h"), 1, (3, 2, 1)), Port(Atom("a@h"), 5, 1)
    assert format_term((pid, ref, port), node="a@h") == "{<0.85.2>,#Ref<0.1.2.3>,#Port<0.5>}"
    assert format_term(pid, node="b@h") == "<a@h.85.2>"


def test_format_rejects_non_terms():
    with pytest.raises(EncodeError):
        format_term(object())
    with pytest.raises(EncodeError):
        encode({1: object()})


def test_format_deep_term_is_iterative():
    value = []
    for _ in range(200_000):
        value = [value]
    text = format_term(value)
    assert len(text) == 2 * 200_001


@pytest.mark.parametrize(
    "text, term",
    [
        ("42", 42),
        ("-42", -42),
        ("1_000_000", 1_000_000),
        ("16#FF", 255),
        ("-16#ff", -255),
        ("2#1010", 10),
        ("36#Z", 35),
        ("$a", 97),
        ("$\\n", 10),
        ("$\\x{1F600}", 0x1F600),
        ("$\\101", 65),
        ("$\\^a", 1),
        ("$ ", 32),
        ("1.5", 1.5),
        ("-2.5e-3", -2.5e-3),
        ("1.0E10", 1.0e10),
        ("ok", Atom("ok")),
        ("'Hello World'", Atom("Hello World")),
        ("'it\\'s'", Atom("it's")),
        ("é", Atom("é")),
        ("a@b", Atom("a@b")),
        ("true", True),
        ("false", False),
        ("undefined", Atom("undefined")),
        ('"abc"', "abc"),
        ('"a\\tb\\"c"', 'a\tb"c'),
        ('"ab" "cd"', "abcd"),
        ('""', []),
        ('"日本"', "日本"),
        ("<<>>", b""),
        ('<<"bin">>', b"bin"),
        ('<<"é"/utf8>>', "é".encode()),
        ('<<"é">>', b"\xe9"),
        ("<<1,2,3>>", b"\x01\x02\x03"),
        ('<<1, "a", $b>>', b"\x01ab"),
        ("<<1:3>>", BitString(b"\x20", 3)),
        ("<<1,2,5:3>>", BitString(b"\x01\x02\xa0", 3)),
        ("<<256:16>>", b"\x01\x00"),
        ("<<-1>>", b"\xff"),
        ("{}", ()),
        ("{a, {b, [c]}}", (Atom("a"), (Atom("b"), [Atom("c")]))),
        ("[]", []),
        ("[1, 2 | 3]", ImproperList((1, 2), 3)),
        ("[1 | [2, 3]]", [1, 2, 3]),
        ('[$a | "bc"]', [97, 98, 99]),
        ("#{}", {}),
        ("#{a => 1, \"b\" => [x]}", {Atom("a"): 1, "b": [Atom("x")]}),
        ("#{[1] => 2}", {MapKey([1]): 2}),
        ("fun erlang:node/0", ExportFun(Atom("erlang"), Atom("node"), 0)),
        ("  {ok, 1} .  ", (Atom("ok"), 1)),
        ("{a, % a comment\n b}", (Atom("a"), Atom("b"))),
    ],
)
def test_parse_term(text, term):
    assert same_term(parse_term(text), term), text


@pytest.mark.parametrize(
    "text, column",
    [
        ("", 1),
        ("{a, b", 6),
        ("{a b}", 4),
        ("[1, 2", 6),
        ("X", 1),
        ("{ok, Var}", 6),
        ('"unterminated', 1),
        ("'unterminated", 1),
        ("1 2", 3),
        ("#{a}", 4),
        ("<<1.5>>", 3),
        ('<<"日">>', 3),
        ("37#1", 1),
        ("16#", 4),
        ("-a", 2),
        ("1..", 3),
    ],
)
def test_parse_errors_name_the_column(text, column):
    with pytest.raises(TermSyntaxError) as info:
        parse_term(text)
    assert info.value.position == column, str(info.value)
    assert f"column {column}" in str(info.value)
    assert "\n" not in str(info.value)


def test_parse_nesting_is_bounded():
    with pytest.raises(TermSyntaxError):
        parse_term("[" * 5000 + "]" * 5000)
    assert parse_term("[" * 150 + "]" * 150) is not None


def test_trailing_dot_is_optional():
    assert parse_term("1.") == 1 and parse_term("1") == 1
    assert parse_term("{a}.") == (Atom("a"),)


def test_python_values_encode_by_the_documented_mapping():
    assert decode(encode(None))[0] == Atom("undefined")
    assert decode(encode(bytearray(b"ab")))[0] == b"ab"
    assert decode(encode(memoryview(b"ab")))[0] == b"ab"
    assert decode(encode(""))[0] == []
    assert decode(encode(BitString(b"ab", 8)))[0] == b"ab"
    assert encode("é") == b"\x83k\x00\x01\xe9"  # STRING_EXT, code point 233
    assert encode([1, 2]) == b"\x83k\x00\x02\x01\x02"  # like term_to_binary
    assert encode("日") == b"\x83l\x00\x00\x00\x01b\x00\x00\x65\xe5j"
    assert encode(Atom("é")) == b"\x83w\x02\xc3\xa9"  # SMALL_ATOM_UTF8
    assert encode(Port(Atom("a"), 1 << 40, 1))[1] == 120  # V4_PORT only when needed
    assert encode(Port(Atom("a"), 1, 1))[1] == 89
    assert type(decode(encode([True, 1]))[0][0]) is bool


@pytest.mark.parametrize(
    "value",
    [float("nan"), float("inf"), Atom("x" * 256), Atom("\ud800"), object(), {1: {2: set()}},
     BitString(b"", 3), BitString(b"a", 0), Pid(Atom("a"), -1, 0, 0), Reference(Atom("a"), 0, ())],
)
def test_unencodable_values_raise_encode_error(value):
    with pytest.raises(EncodeError):
        encode(value)
