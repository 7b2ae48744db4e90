"""Parser for Elixir literals, as users type them in CLI arguments with `--syntax elixir`.

    :ok  :"a b"  :+  nil  true  MyApp.Release (= :"Elixir.MyApp.Release")
    42  -1_000  0xFF  0b101  ?a  1.5  1.0e-3
    "text" (a binary, UTF-8)  'chars' / ~c"chars" (a charlist)  <<1, 2, "ab">>
    [1, 2]  [a: 1, b: 2]  [1 | 2]  {:ok, 1}  %{a: 1}  %{"k" => 1}  %MyApp.S{a: 1}
    &:erlang.node/0  &Enum.map/2

No evaluation: no variables, calls or `#{}` interpolation. The Python shapes are the
codec's (term/types.py): binaries bytes, charlists str, atoms Atom, nil Atom("nil").
Iterative: an explicit stack of open containers, so nesting depth costs no Python
stack. Errors are TermSyntaxError naming the 1-based column.
"""

from __future__ import annotations

import re
from typing import Any

from ..errors import TermSyntaxError
from .types import Atom, ExportFun, ImproperList, MapKey

_SPACE = re.compile(r"\s*").match
_NUMBER = re.compile(
    r"0x[0-9a-fA-F]+(?:_[0-9a-fA-F]+)*|0o[0-7]+(?:_[0-7]+)*|0b[01]+(?:_[01]+)*"
    r"|[0-9]+(?:_[0-9]+)*(?:\.[0-9]+(?:_[0-9]+)*(?:[eE][-+]?[0-9]+)?)?"
).match
_IDENT = re.compile(r"[^\W\d][\w@]*[?!]?").match
_ALIAS = re.compile(r"[A-Z][A-Za-z0-9_]*(?:\.[A-Z][A-Za-z0-9_]*)*").match
# operator atoms, longest first so :=== is not read as :== then =
_OPERATORS = sorted(
    ("+ - ! ^ not @ & * / ++ -- +++ --- .. <> in |> <<< >>> <<~ ~>> <~ ~> <~> < > <= >= == != =~ "
     "=== !== && &&& and || ||| or = | when <- -> \\\\ ** ..// ... . % %{} {} <<>>").split(),
    key=len, reverse=True)
_SIMPLE_ESCAPES = {"a": 7, "b": 8, "d": 127, "e": 27, "f": 12, "n": 10, "r": 13, "s": 32,
                   "t": 9, "v": 11, "0": 0}
_PUNCT = ("%{", "<<", ">>", "=>", "[", "]", "{", "}", ",", "|")
_PUNCT_START = frozenset(t[0] for t in _PUNCT)
_OP_KEYS = [o + ":" for o in _OPERATORS]
_OP_START = frozenset(o[0] for o in _OPERATORS)


def _error(message: str, pos: int) -> TermSyntaxError:
    err = TermSyntaxError(f"{message} at column {pos + 1}")
    err.position = pos + 1  # type: ignore[attr-defined]
    return err


class _Frame:
    """An open container: its kind, closing token and what it holds so far."""

    __slots__ = ("kind", "close", "items", "keys", "key", "kw_key", "tail", "has_tail", "struct", "start")

    def __init__(self, kind: str, close: str, start: int, struct: str | None = None) -> None:
        self.kind = kind          # list | tuple | map | binary
        self.close = close
        self.items: list[Any] = []
        self.keys: list[Any] = []  # map keys, beside items (values)
        self.key: Any = _NONE      # a map key waiting for its `=>` value
        self.kw_key: Any = _NONE   # a keyword key (`a:`) waiting for its value
        self.tail: Any = _NONE
        self.has_tail = False
        self.struct = struct
        self.start = start


_NONE = object()


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def skip(self) -> None:
        pos = self.pos
        if pos < len(self.text) and self.text[pos].isspace():
            self.pos = _SPACE(self.text, pos).end()

    def fail(self, message: str, pos: int | None = None) -> TermSyntaxError:
        p = self.pos if pos is None else pos
        if p >= len(self.text):
            return _error(f"{message}, found the end of the text", p)
        return _error(f"{message}, found {self.text[p:p + 12]!r}", p)

    def punct(self) -> str | None:
        """The punctuation token at pos (not consumed), if any."""
        self.skip()
        if self.pos >= len(self.text) or self.text[self.pos] not in _PUNCT_START:
            return None
        for tok in _PUNCT:
            if self.text.startswith(tok, self.pos):
                return tok
        return None

    def take(self, tok: str) -> bool:
        self.skip()
        if self.text.startswith(tok, self.pos):
            self.pos += len(tok)
            return True
        return False

    # --- the driver: values into open containers -----------------------------------

    def parse(self) -> Any:
        stack: list[_Frame] = []
        while True:
            # want a value (or a keyword key, or the close of an empty container)
            value = self.value_or_open(stack)
            if value is _NONE:
                continue
            while True:  # a value is complete: hand it to the innermost container
                if not stack:
                    self.skip()
                    if self.pos != len(self.text):
                        raise self.fail("unexpected text after the term")
                    return value
                f = stack[-1]
                self.attach(f, value)
                if f.kind == "map" and f.key is not _NONE:
                    if not self.take("=>"):
                        raise self.fail("expected '=>' after a map key")
                    break
                if self.take(","):
                    if f.has_tail:
                        raise self.fail("expected ']' after the tail of a list")
                    break
                if f.kind == "list" and not f.has_tail and self.take("|"):
                    f.has_tail = True
                    break
                if self.take(f.close):
                    stack.pop()
                    value = self.finish(f)
                    continue
                raise self.fail(f"expected ',' or '{f.close}'")

    def value_or_open(self, stack: list[_Frame]) -> Any:
        """A scalar; or _NONE after opening a container or reading a keyword key."""
        self.skip()
        start = self.pos
        key = self.keyword_key()
        if key is not None:
            if not stack or stack[-1].kind == "binary" or stack[-1].has_tail:
                raise _error("a keyword pair (key: value) outside a list, tuple or map", start)
            stack[-1].kw_key = key
            return _NONE
        tok = self.punct()
        opener = {"[": ("list", "]"), "{": ("tuple", "}"), "%{": ("map", "}"), "<<": ("binary", ">>")}
        if tok in opener:
            kind, close = opener[tok]
            self.pos += len(tok)
            f = _Frame(kind, close, start)
            if self.take(close):
                return self.finish(f)
            stack.append(f)
            return _NONE
        if self.text.startswith("%", self.pos):
            m = _ALIAS(self.text, self.pos + 1)
            if not m or not self.text.startswith("{", m.end()):
                raise self.fail("expected '%{' or '%Alias{'")
            self.pos = m.end() + 1
            f = _Frame("map", "}", start, struct="Elixir." + m.group())
            if self.take("}"):
                return self.finish(f)
            stack.append(f)
            return _NONE
        return self.scalar()

    def keyword_key(self) -> Atom | bool | None:
        """`name: ` or `"quoted": ` (consumed), else None (nothing consumed)."""
        text, pos = self.text, self.pos
        if text.startswith('"', pos):
            try:
                end, name = self.quoted_at(pos, '"')
            except TermSyntaxError:
                return None
            finally:
                self.pos = pos   # quoted_at moves pos through escapes
            try:
                name = name.decode("utf-8")
            except UnicodeDecodeError:
                return None
        else:
            m = _IDENT(text, pos) or _ALIAS(text, pos)
            if m:
                end, name = m.end(), m.group()
            else:  # an operator key: [+: 1], [|>: 2]
                if pos >= len(text) or text[pos] not in _OP_START:
                    return None
                op = next((o for o in _OP_KEYS if text.startswith(o, pos)), None)
                if op is None:
                    return None
                end, name = pos + len(op) - 1, op[:-1]
        if not (text.startswith(":", end) and (end + 1 == len(text) or text[end + 1].isspace())):
            return None
        self.pos = end + 1
        return _atom(name)

    def attach(self, f: _Frame, value: Any) -> None:
        if f.kw_key is not _NONE:
            pair = (f.kw_key, value)
            f.kw_key = _NONE
            if f.kind == "map":
                f.keys.append(pair[0])
                f.items.append(value)
            else:
                f.items.append(pair)
                f.keys.append(True)   # marks a keyword element
            return
        if f.has_tail:
            f.tail = value
            return
        if f.kind == "map":
            if f.struct is not None:
                raise _error("struct fields are keyword pairs (field: value)", f.start)
            if f.key is _NONE:
                f.key = value
            else:
                f.keys.append(f.key)
                f.items.append(value)
                f.key = _NONE
            return
        if f.kind == "binary" and not (type(value) is int or type(value) is bytes):
            raise self.fail("binary segments must be integers or strings")
        if f.keys and f.keys[-1] is True:
            raise self.fail("after keyword pairs (key: value) only more keyword pairs may follow")
        f.items.append(value)
        f.keys.append(False)

    def finish(self, f: _Frame) -> Any:
        if f.kw_key is not _NONE or f.key is not _NONE:
            raise self.fail("a key without its value")
        if f.kind == "list":
            if f.has_tail:
                if f.tail is _NONE:
                    raise self.fail("expected the list's tail after '|'")
                if isinstance(f.tail, list):
                    return f.items + f.tail
                return ImproperList(tuple(f.items), f.tail)
            return f.items
        if f.kind == "tuple":
            # {1, a: 2} is {1, [a: 2]}: trailing keyword pairs form one list
            first_kw = next((i for i, k in enumerate(f.keys) if k is True), None)
            if first_kw is None:
                return tuple(f.items)
            return (*f.items[:first_kw], f.items[first_kw:])
        if f.kind == "binary":
            out = bytearray()
            for v in f.items:
                if type(v) is int:
                    if not 0 <= v <= 255:
                        raise _error(f"binary segment {v} is not a byte (0..255)", f.start)
                    out.append(v)
                else:
                    out += v
            return bytes(out)
        result: dict[Any, Any] = {}
        if f.struct is not None:
            result[Atom("__struct__")] = Atom(f.struct)
        for k, v in zip(f.keys, f.items):
            try:
                result[k] = v
            except TypeError:  # a list or map as key
                result[MapKey(k)] = v
        return result

    # --- scalars ------------------------------------------------------------------

    def scalar(self) -> Any:
        text = self.text
        start = self.pos
        if start >= len(text):
            raise self.fail("expected a term")
        ch = text[start]
        if ch == "-" or ch == "+":
            self.pos += 1
            m = _NUMBER(text, self.pos)
            if not m:
                raise self.fail("expected a number after the sign")
            v = self.number()
            return -v if ch == "-" else v
        if ch.isdigit():
            return self.number()
        if ch == "?":
            return self.char_literal()
        if ch == '"':
            self.pos, data = self.quoted_at(start, '"')
            return data
        if ch == "'":
            self.pos, chars = self.quoted_at(start, "'")
            return chars or []
        if ch == "~":
            return self.sigil()
        if ch == ":":
            return self.atom()
        if ch == "&":
            return self.fun()
        m = _ALIAS(text, start)
        if m:
            self.pos = m.end()
            name = m.group()
            return Atom(name if name == "Elixir" or name.startswith("Elixir.") else "Elixir." + name)
        m = _IDENT(text, start)
        if m:
            name = m.group()
            if name in ("nil", "true", "false"):
                self.pos = m.end()
                return _atom(name)
            raise _error(f"bare name {name!r}: an atom is written :{name} in Elixir syntax "
                         "(or use --syntax erlang)", start)
        raise self.fail("expected a term")

    def number(self) -> int | float:
        m = _NUMBER(self.text, self.pos)
        if not m:
            raise self.fail("expected a number")
        self.pos = m.end()
        digits = m.group().replace("_", "")
        if digits[:2] in ("0x", "0o", "0b"):
            return int(digits[2:], {"0x": 16, "0o": 8, "0b": 2}[digits[:2]])
        if "." in digits:
            v = float(digits)
            if v - v:
                raise _error("float out of range", m.start())
            return v
        return int(digits)

    def char_literal(self) -> int:
        self.pos += 1  # ?
        if self.pos >= len(self.text):
            raise self.fail("expected a character after '?'")
        ch = self.text[self.pos]
        self.pos += 1
        if ch == "\\":
            return self.escape(charlist=True)
        return ord(ch)

    def atom(self) -> Any:
        text, start = self.text, self.pos
        self.pos += 1  # ':'
        if text.startswith(('"', "'"), self.pos):
            self.pos, name = self.quoted_at(self.pos, text[self.pos])
            try:
                return _atom(name.decode("utf-8") if isinstance(name, bytes) else name)
            except UnicodeDecodeError:
                raise _error("an atom's name must be UTF-8 text", start) from None
        m = _IDENT(text, self.pos) or _ALIAS(text, self.pos)
        if m:
            self.pos = m.end()
            return _atom(m.group())
        for op in _OPERATORS:
            if text.startswith(op, self.pos):
                self.pos += len(op)
                return Atom(op)
        raise _error("expected an atom name after ':'", start)

    def fun(self) -> ExportFun:
        start = self.pos
        self.pos += 1  # '&'
        if self.text.startswith(":", self.pos):
            module = self.atom()
        else:
            m = _ALIAS(self.text, self.pos)
            if not m:
                raise _error("expected &Module.fun/arity", start)
            self.pos = m.end()
            module = Atom("Elixir." + m.group())
        if not self.text.startswith(".", self.pos):
            raise _error("expected &Module.fun/arity", start)
        self.pos += 1
        text = self.text
        m = _IDENT(text, self.pos)
        if m:
            self.pos = m.end()
            function = m.group()
        elif text.startswith('"', self.pos):
            self.pos, raw = self.quoted_at(self.pos, '"')
            function = raw.decode("utf-8", "replace")
        else:
            op = next((o for o in _OPERATORS if text.startswith(o, self.pos) and text.startswith("/", self.pos + len(o))),
                      None)
            if op is None:
                raise _error("expected a function name in &Module.fun/arity", start)
            self.pos += len(op)
            function = op
        if not self.text.startswith("/", self.pos):
            raise _error("expected /arity in &Module.fun/arity", start)
        self.pos += 1
        m = re.compile(r"[0-9]+").match(self.text, self.pos)
        if not m:
            raise _error("expected the arity in &Module.fun/arity", start)
        self.pos = m.end()
        return ExportFun(Atom(str(module)), Atom(function), int(m.group()))

    def sigil(self) -> Any:
        text, start = self.text, self.pos
        kind = text[start + 1:start + 2]
        delim = text[start + 2:start + 3]
        if kind not in ("c", "s") or delim not in ('"', "'"):
            raise _error('only the ~c"..." and ~s"..." sigils are literals here', start)
        self.pos, value = self.quoted_at(start + 2, delim, as_charlist=kind == "c")
        return (value or []) if kind == "c" else value

    def quoted_at(self, start: int, quote: str, *, as_charlist: bool | None = None) -> tuple[int, Any]:
        """A "..." (bytes, UTF-8) or '...' (str, a charlist) starting at `start`: (end, value)."""
        text = self.text
        charlist = quote == "'" if as_charlist is None else as_charlist
        pos = start + 1
        out: list[str] = []
        raw = bytearray()   # for "..." with \xHH byte escapes

        def flush() -> None:
            if out:
                raw.extend("".join(out).encode("utf-8", "surrogatepass"))
                out.clear()
        while True:
            if pos >= len(text):
                raise _error(f"unterminated {quote}...{quote}", start)
            ch = text[pos]
            if ch == quote:
                pos += 1
                break
            if ch == "#" and text.startswith("#{", pos):
                raise _error("interpolation #{...} is not a literal (escape it as \\#{)", pos)
            if ch == "\\":
                self.pos = pos + 1
                if not charlist and text.startswith("x", self.pos):
                    flush()
                    raw.append(self.hex_escape(2))
                else:
                    out.append(chr(self.escape(charlist=charlist)))
                pos = self.pos
                continue
            out.append(ch)
            pos += 1
        if charlist:
            return pos, "".join(out)
        flush()
        return pos, bytes(raw)

    def hex_escape(self, n: int) -> int:
        self.pos += 1  # x
        digits = self.text[self.pos:self.pos + n]
        if len(digits) != n or not all(c in "0123456789abcdefABCDEF" for c in digits):
            raise self.fail("bad \\xHH escape")
        self.pos += n
        return int(digits, 16)

    def escape(self, *, charlist: bool) -> int:
        text = self.text
        if self.pos >= len(text):
            raise self.fail("unfinished escape")
        ch = text[self.pos]
        if ch == "x":
            return self.hex_escape(2)
        if ch == "u":
            self.pos += 1
            if text.startswith("{", self.pos):
                end = text.find("}", self.pos)
                digits = text[self.pos + 1:end] if end > 0 else ""
                self.pos = end + 1 if end > 0 else self.pos
            else:
                digits = text[self.pos:self.pos + 4]
                self.pos += 4
            if not digits or len(digits) > 6 or not all(c in "0123456789abcdefABCDEF" for c in digits):
                raise self.fail("bad \\u escape")
            value = int(digits, 16)
            if value > 0x10FFFF or 0xD800 <= value <= 0xDFFF:
                raise self.fail(f"\\u{{{digits}}} is not a Unicode character")
            return value
        self.pos += 1
        return _SIMPLE_ESCAPES.get(ch, ord(ch))


def _atom(name: str) -> Any:
    if name == "true":
        return True
    if name == "false":
        return False
    if len(name) > 255:
        raise TermSyntaxError(f"atom longer than 255 characters: {name[:20]!r}...")
    return Atom(name)


def parse_elixir(text: str) -> Any:
    """Parse one Elixir literal."""
    return _Parser(text).parse()


def elixir_name(text: str) -> str:
    """A module or function argument: `MyApp.Release` -> "Elixir.MyApp.Release",
    `:lists` / `lists` -> "lists", `:"Elixir.Foo"` -> "Elixir.Foo"."""
    t = text.strip()
    if t.startswith(":"):
        value = parse_elixir(t)
        if not isinstance(value, (Atom, bool)):
            raise TermSyntaxError(f"not an atom: {text!r}")
        return str(value).lower() if isinstance(value, bool) else str(value)
    m = _ALIAS(t)
    if m and m.end() == len(t):
        return t if t == "Elixir" or t.startswith("Elixir.") else "Elixir." + t
    return t
