"""Parser for Erlang term literals, as users type them in CLI arguments.

Integers (1_000, 16#FF, $a, -5), floats, atoms (bare and quoted), strings
(charlists, as str), binaries (<<"text">>, <<"é"/utf8>>, <<1,2,3>>, <<5:3>>),
tuples, lists with tails, maps and ``fun M:F/A``. A trailing '.' is optional.
Errors are TermSyntaxError with the 1-based column in the message and in
``.position``.
"""

from __future__ import annotations

import re
from typing import Any

from ..errors import TermSyntaxError
from .types import Atom, BitString, ExportFun, ImproperList, MapKey

_MAX_DEPTH = 200  # nesting bound: 3 frames a level stays well inside Python's 1000

_SPACE = re.compile(r"(?:\s+|%[^\n]*)*").match
_INT = re.compile(r"[0-9]+(?:_[0-9]+)*").match
_FRACTION = re.compile(r"\.[0-9]+(?:_[0-9]+)*(?:[eE][-+]?[0-9]+)?").match
_BASED = re.compile(r"[0-9a-zA-Z]+(?:_[0-9a-zA-Z]+)*").match
_NAME = re.compile("[a-zA-Z0-9_@\xc0-\xd6\xd8-\xf6\xf8-\xff]*").match
_ATOM_START = "abcdefghijklmnopqrstuvwxyz" + "".join(
    chr(c) for c in range(0xDF, 0x100) if c != 0xF7
)
_VAR_START = "ABCDEFGHIJKLMNOPQRSTUVWXYZ_" + "".join(
    chr(c) for c in range(0xC0, 0xDF) if c != 0xD7
)
_SIMPLE_ESCAPES = {
    "b": 8, "d": 127, "e": 27, "f": 12, "n": 10, "r": 13, "s": 32, "t": 9, "v": 11,
}


def _error(message: str, pos: int) -> TermSyntaxError:
    err = TermSyntaxError(f"{message} at column {pos + 1}")
    err.position = pos + 1  # type: ignore[attr-defined]
    return err


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0
        self.depth = 0

    # -- low level ---------------------------------------------------------

    def skip(self) -> None:
        self.pos = _SPACE(self.text, self.pos).end()

    def peek(self, n: int = 1) -> str:
        self.skip()
        return self.text[self.pos : self.pos + n]

    def expect(self, token: str) -> None:
        if self.peek(len(token)) != token:
            raise self.fail(f"expected '{token}'")
        self.pos += len(token)

    def accept(self, token: str) -> bool:
        if self.peek(len(token)) == token:
            self.pos += len(token)
            return True
        return False

    def fail(self, message: str) -> TermSyntaxError:
        if self.pos >= len(self.text):
            return _error(f"{message}, found the end of the text", self.pos)
        snippet = self.text[self.pos : self.pos + 12]
        return _error(f"{message}, found {snippet!r}", self.pos)

    # -- terms ---------------------------------------------------------------

    def term(self) -> Any:
        self.depth += 1
        if self.depth > _MAX_DEPTH:
            raise self.fail(f"terms nested deeper than {_MAX_DEPTH}")
        try:
            return self._term()
        finally:
            self.depth -= 1

    def _term(self) -> Any:
        ch = self.peek()
        if not ch:
            raise self.fail("expected a term")
        if ch in "-+":
            self.pos += 1
            ch2 = self.peek()
            if not ch2 or not (ch2.isdigit() or ch2 == "$"):
                raise self.fail("expected a number after the sign")
            value = self.number()
            return -value if ch == "-" else value
        if ch.isdigit() or ch == "$":
            return self.number()
        if ch == "{":
            self.pos += 1
            return tuple(self.sequence("}"))
        if ch == "[":
            return self.list_()
        if ch == "#":
            if self.text.startswith("#{", self.pos):
                return self.map_()
            raise self.fail("expected '#{'")
        if ch == '"':
            return self.strings()
        if ch == "'":
            return self.atom_value(self.quoted("'"))
        if self.text.startswith("<<", self.pos):
            return self.binary()
        if ch in _ATOM_START:
            name = self.bare_name()
            if name == "fun":
                return self.fun()
            return self.atom_value(name)
        if ch in _VAR_START:
            raise self.fail("variables are not allowed in a term literal")
        raise self.fail("expected a term")

    def sequence(self, close: str) -> list:
        items: list = []
        if self.accept(close):
            return items
        while True:
            items.append(self.term())
            if self.accept(","):
                continue
            self.expect(close)
            return items

    def list_(self) -> Any:
        self.pos += 1  # '['
        items: list = []
        if self.accept("]"):
            return items
        while True:
            items.append(self.term())
            if self.accept(","):
                continue
            if self.accept("|"):
                tail = self.term()
                self.expect("]")
                if isinstance(tail, list):
                    return items + tail
                if isinstance(tail, str) and type(tail) is not Atom:
                    return items + [ord(c) for c in tail]
                return ImproperList(tuple(items), tail)
            self.expect("]")
            return items

    def map_(self) -> dict:
        self.pos += 2  # '#{'
        result: dict = {}
        if self.accept("}"):
            return result
        while True:
            key = self.term()
            self.expect("=>")
            value = self.term()
            try:
                result[key] = value
            except TypeError:  # a list or map as key
                result[MapKey(key)] = value
            if self.accept(","):
                continue
            self.expect("}")
            return result

    def fun(self) -> ExportFun:
        module = self.atom_name()
        self.expect(":")
        function = self.atom_name()
        self.expect("/")
        if not self.peek().isdigit():
            raise self.fail("expected the fun's arity")
        arity = self.number()
        return ExportFun(Atom(module), Atom(function), arity)

    def atom_name(self) -> str:
        ch = self.peek()
        if ch == "'":
            return self.quoted("'")
        if ch and ch in _ATOM_START:
            return self.bare_name()
        raise self.fail("expected an atom")

    def bare_name(self) -> str:
        end = _NAME(self.text, self.pos).end()
        name = self.text[self.pos : end]
        self.pos = end
        return name

    @staticmethod
    def atom_value(name: str) -> Any:
        if name == "true":
            return True
        if name == "false":
            return False
        if len(name) > 255:
            raise TermSyntaxError(f"atom longer than 255 characters: {name[:20]!r}...")
        return Atom(name)

    # -- numbers -------------------------------------------------------------

    def number(self) -> int | float:
        self.skip()
        start = self.pos
        if self.text.startswith("$", start):
            self.pos += 1
            if self.pos >= len(self.text):
                raise self.fail("expected a character after '$'")
            return self.char()
        match = _INT(self.text, start)
        if not match:
            raise self.fail("expected a number")
        self.pos = match.end()
        if self.text.startswith("#", self.pos):
            base = int(match.group().replace("_", ""))
            if not 2 <= base <= 36:
                raise _error(f"integer base {base} is not 2..36", start)
            digits = _BASED(self.text, self.pos + 1)
            if not digits:
                self.pos += 1
                raise self.fail(f"expected base-{base} digits")
            try:
                value = int(digits.group().replace("_", ""), base)
            except ValueError:
                raise _error(f"bad base-{base} integer", start) from None
            self.pos = digits.end()
            return value
        fraction = _FRACTION(self.text, self.pos)
        if fraction:
            self.pos = fraction.end()
            value = float(self.text[start : self.pos].replace("_", ""))
            if value - value:
                raise _error("float out of range", start)
            return value
        return int(match.group().replace("_", ""))

    def char(self) -> int:
        ch = self.text[self.pos]
        self.pos += 1
        if ch != "\\":
            return ord(ch)
        return self.escape()

    def escape(self) -> int:
        """The escape after a backslash (shared by $\\n, strings and quoted atoms)."""
        text = self.text
        if self.pos >= len(text):
            raise self.fail("unfinished escape")
        ch = text[self.pos]
        self.pos += 1
        if ch in "01234567":
            end = self.pos
            while end < len(text) and end < self.pos + 2 and text[end] in "01234567":
                end += 1
            value = int(text[self.pos - 1 : end], 8)
            self.pos = end
            return value
        if ch == "x":
            if text.startswith("{", self.pos):
                end = text.find("}", self.pos)
                digits = text[self.pos + 1 : end] if end > 0 else ""
                if not digits or not all(c in "0123456789abcdefABCDEF" for c in digits):
                    raise self.fail("bad \\x{...} escape")
                self.pos = end + 1
            else:
                digits = text[self.pos : self.pos + 2]
                if len(digits) != 2 or not all(c in "0123456789abcdefABCDEF" for c in digits):
                    raise self.fail("bad \\xHH escape")
                self.pos += 2
            value = int(digits, 16)
            if value > 0x10FFFF or 0xD800 <= value <= 0xDFFF:
                raise self.fail(f"\\x{{{digits}}} is not a Unicode character")
            return value
        if ch == "^":
            if self.pos >= len(text):
                raise self.fail("unfinished \\^ escape")
            ctrl = text[self.pos]
            self.pos += 1
            return ord(ctrl) & 31
        return _SIMPLE_ESCAPES.get(ch, ord(ch))

    # -- text ------------------------------------------------------------------

    def quoted(self, quote: str) -> str:
        self.skip()
        start = self.pos
        self.pos += 1  # opening quote
        text = self.text
        chars: list[str] = []
        while True:
            if self.pos >= len(text):
                raise _error(f"unterminated {quote}...{quote}", start)
            ch = text[self.pos]
            if ch == quote:
                self.pos += 1
                return "".join(chars)
            if ch == "\\":
                self.pos += 1
                chars.append(chr(self.escape()))
            else:
                chars.append(ch)
                self.pos += 1

    def strings(self) -> Any:
        parts = [self.quoted('"')]
        while self.peek() == '"':  # "ab" "cd" is one string, as in Erlang
            parts.append(self.quoted('"'))
        text = "".join(parts)
        return text if text else []

    # -- binaries ------------------------------------------------------------

    def binary(self) -> bytes | BitString:
        self.pos += 2  # '<<'
        acc = 0  # all bits so far, as one integer
        nbits = 0
        if not self.accept(">>"):
            while True:
                start = self.pos
                ch = self.peek()
                if ch == '"':
                    text = self.strings() or ""
                    if self.accept("/"):
                        kind = self.bare_name()
                        if kind != "utf8":
                            raise _error(f"unsupported string segment type /{kind}", start)
                        raw = text.encode("utf-8")
                    else:
                        if any(ord(c) > 255 for c in text):
                            raise _error("string segment has characters above 255; add /utf8", start)
                        raw = text.encode("latin-1")
                    acc = (acc << (8 * len(raw))) | int.from_bytes(raw, "big")
                    nbits += 8 * len(raw)
                else:
                    value = self._term() if ch and (ch in "-+$" or ch.isdigit()) else None
                    if type(value) is not int:
                        raise _error("binary segments must be integers or strings", start)
                    size = 8
                    if self.accept(":"):
                        if not self.peek().isdigit():
                            raise self.fail("expected a segment size")
                        size = self.number()
                        if type(size) is not int or size < 1:
                            raise self.fail("segment size must be a positive integer")
                    if self.accept("/"):
                        kind = self.bare_name()
                        if kind not in ("integer", "unsigned", "big"):
                            raise _error(f"unsupported integer segment type /{kind}", start)
                    acc = (acc << size) | (value & ((1 << size) - 1))
                    nbits += size
                if self.accept(","):
                    continue
                self.expect(">>")
                break
        whole, rest = divmod(nbits, 8)
        if not rest:
            return acc.to_bytes(whole, "big")
        data = (acc << (8 - rest)).to_bytes(whole + 1, "big")
        return BitString(data, rest)


def parse_term(text: str) -> Any:
    """Parse one Erlang term literal (a trailing '.' is optional)."""
    parser = _Parser(text)
    try:
        value = parser.term()
    except RecursionError:  # only if called with little stack left
        raise _error("term nested too deeply", parser.pos) from None
    parser.accept(".")
    parser.skip()
    if parser.pos != len(text):
        raise parser.fail("unexpected text after the term")
    return value
