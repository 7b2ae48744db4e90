"""term/tags.py is the one table of ETF tag bytes; the codec's hot loops use the
literal numbers (named in a comment) and must agree with it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from pyrlang_deploy.errors import DecodeError
from pyrlang_deploy.term import decode, decoder, encoder, tags

TERM = Path(decoder.__file__).parent
_COMPARE = re.compile(r"\b(?:tag|t) == (\d+)")
_EMIT = re.compile(r"(?:_tag_(?:u32|u16|i32|f64)\(|out\.append\(|bytes\(\()(\d+)\b")
_NAME = re.compile(r"\b([A-Z][A-Z0-9_]{2,})\b")


def _names_in(comment: str) -> set[str]:
    return {n.removesuffix("_EXT") for n in _NAME.findall(comment)} & set(tags.NAMES.values())


def test_the_table_is_the_format():
    assert tags.VERSION == decoder.VERSION == 131
    assert len(tags.NAMES) == 32 and tags.NAMES[tags.SMALL_TUPLE] == "SMALL_TUPLE"
    assert tags.REFUSED <= set(tags.NAMES)


def test_every_tag_the_decoder_compares_is_named_and_named_right():
    seen: set[int] = set()
    for lineno, line in enumerate((TERM / "decoder.py").read_text().splitlines(), 1):
        numbers = {int(n) for n in _COMPARE.findall(line)}
        if not numbers:
            continue
        assert numbers <= set(tags.NAMES), f"decoder.py:{lineno}: unknown tag in {line.strip()}"
        seen |= numbers
        comment = line.partition("#")[2]
        named = _names_in(comment)
        if named:  # the comment names the tags: exactly the ones compared
            assert named == {tags.NAMES[n] for n in numbers}, f"decoder.py:{lineno}: {line.strip()}"
    # every tag is handled, or refused on purpose with its own message
    assert set(tags.NAMES) - tags.REFUSED - {tags.FUN} <= seen


def test_every_tag_the_encoder_writes_is_a_tag():
    emitted: set[int] = set()
    for lineno, line in enumerate((TERM / "encoder.py").read_text().splitlines(), 1):
        for n in map(int, _EMIT.findall(line)):
            assert n in tags.NAMES, f"encoder.py:{lineno}: {line.strip()}"
            emitted.add(n)
        named = _names_in(line.partition("#")[2])
        numbers = {int(n) for n in _EMIT.findall(line)}
        if named and numbers:
            assert named == {tags.NAMES[n] for n in numbers}, f"encoder.py:{lineno}: {line.strip()}"
    assert {tags.NEW_PID, tags.SMALL_TUPLE, tags.MAP, tags.BINARY, tags.LIST, tags.NIL} <= emitted


@pytest.mark.parametrize("tag", sorted(tags.REFUSED))
def test_refused_tags_have_their_own_error(tag):
    with pytest.raises(DecodeError) as e:
        decode(bytes([131, tag, 0, 0, 0, 0, 0, 0]))
    if tag != tags.FUN:
        assert "unknown term tag" not in str(e.value)


def test_unassigned_bytes_are_unknown_tags():
    for byte in range(256):
        if byte in tags.NAMES or byte == tags.VERSION:
            continue
        with pytest.raises(DecodeError, match="unknown term tag"):
            decode(bytes([131, byte, 0, 0, 0, 0, 0, 0]))


def test_encoder_module_has_no_tag_of_its_own():
    assert not [n for n in dir(encoder) if n.endswith("_EXT")]
