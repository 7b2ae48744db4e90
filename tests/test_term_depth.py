"""Nothing that prints a term recurses on its depth (issue 10): the Erlang-syntax
formatter, the JSON converter and writer, repr, the REPL's printer and the error
text of a failed call handle 1000 and 1,000,000 levels."""

from __future__ import annotations

import io
import json
import time
import zlib

import pytest

from pyrlang_deploy import jsonable
from pyrlang_deploy.erldist.rpc import format_reason
from pyrlang_deploy.errors import DecodeError
from pyrlang_deploy.term import Atom, ImproperList, MapKey, decode, format_term
from pyrlang_deploy.term.format import safe_repr

DEPTHS = [1000, 1_000_000]


def nested(depth: int, leaf=None) -> list:
    x = [] if leaf is None else leaf
    for _ in range(depth):
        x = [x]
    return x


@pytest.mark.parametrize("depth", DEPTHS)
def test_format_term_and_json(depth):
    x = nested(depth)
    t0 = time.perf_counter()
    assert format_term(x) == "[" * (depth + 1) + "]" * (depth + 1)
    doc = jsonable.to_json({"ok": True, "result": x, "t": (1, Atom("a"))})
    text = jsonable.dumps(doc)
    assert text.startswith('{"ok": true, "result": [[[') and text.endswith(']]], "t": [1, "a"]}')
    assert time.perf_counter() - t0 < 30


def test_dumps_is_json_dumps_where_json_can():
    doc = {"a": [1, 2.5, None, True, "x\n\"é", {"b": []}, {}], "c": {"d": "€"}, "e": []}
    assert jsonable.dumps(doc) == json.dumps(doc, indent=2, ensure_ascii=False)
    assert jsonable._dumps_compact(doc) == json.dumps(doc, ensure_ascii=False)
    assert json.loads(jsonable.dumps(jsonable.to_json(nested(500)))) == nested(500)


def test_to_json_shapes_are_unchanged():
    value = {Atom("k"): (1, b"\xff", ImproperList((1, 2), Atom("t"))), (1, 2): [b"text"]}
    assert jsonable.to_json(value) == {
        "k": [1, {"binary_base64": "/w=="}, {"improper_list": [1, 2], "tail": "t"}],
        "{1,2}": ["text"],
    }


@pytest.mark.parametrize("depth", DEPTHS)
def test_repr_of_terms(depth):
    deep = ImproperList((1, nested(depth)), Atom("t"))
    text = repr(deep)
    assert text.startswith("ImproperList(elements=(1, [[[") and text.endswith("]]]), tail=Atom('t'))")
    assert repr(MapKey(nested(3))) == "MapKey([[[[]]]])"
    assert safe_repr((1,)) == repr((1,)) and safe_repr({"a": [b"x", 2.5]}) == repr({"a": [b"x", 2.5]})
    assert len(safe_repr(nested(depth), 100)) == 100


@pytest.mark.parametrize("depth", DEPTHS)
def test_the_reason_of_a_failed_call(depth):
    text = format_reason((Atom("EXIT"), nested(depth)))
    assert text.startswith("{'EXIT',[[[") and text.endswith("...") and len(text) == 2000


@pytest.mark.parametrize("depth", DEPTHS)
def test_the_repl_prints_deep_values(depth):
    from rich.console import Console

    from pyrlang_deploy import repl
    from pyrlang_deploy.cli import output

    buf = io.StringIO()
    saved, output._console = output._console, Console(file=buf, width=100, force_terminal=False)
    try:
        t0 = time.perf_counter()
        repl._displayhook(nested(depth))
        repl._displayhook(ImproperList((1,), object()))  # not a term: printed by its (safe) repr
        took = time.perf_counter() - t0
    finally:
        output._console = saved
    out = buf.getvalue()
    assert out.count("[") == depth + 1 and "ImproperList(elements=(1,), tail=<object" in out
    assert took < 20


def test_compressed_terms_have_an_absolute_size_limit():
    body = b"m" + (1 << 20).to_bytes(4, "big") + bytes(1 << 20)
    packed = b"\x83P" + len(body).to_bytes(4, "big") + zlib.compress(body)
    assert decode(packed)[0] == bytes(1 << 20)  # under the default limit
    with pytest.raises(DecodeError, match="over the 65536 byte limit"):
        decode(packed, 0, 1 << 16)
