"""Elixir syntax for decoded terms: what Elixir 1.14's `inspect/2` prints with
`limit: :infinity, printable_limit: :infinity, width: :infinity` (everything, one line).

    %{count: 3}   :ok   "text"   'chars'   [a: 1]   {:ok, 1}   #PID<0.85.0>   MyApp.Release

The rules, checked against the real `inspect` in tests/test_elixir_face.py:
- atoms: nil/true/false bare; `Elixir.A.B` as the alias `A.B`; identifiers
  (`:ok`, `:foo?`, `:a@host`) and the operators Elixir's tokenizer accepts (`:+`, `:|>`)
  unquoted; everything else quoted (`:"foo bar"`, `:"=>"`);
- binaries: `"..."` when UTF-8 and printable (String.printable?), else `<<1, 2>>`;
- lists: a charlist `'abc'` only when every element is ASCII-printable (1.14's
  List.ascii_printable?: 32..126 and \\a..\\r, \\e), so [233] stays `[233]`;
  keyword lists `[a: 1]` when every element is {atom, _} and no key starts `Elixir.`;
- maps: `%{a: 1}` when keyword-like, else `%{"k" => 1}`; a map whose `__struct__` is a
  module alias prints as `%Mod{field: v}` (no protocol dispatch: a struct with its own
  Inspect implementation on the node, such as MapSet or Date, still shows its fields);
- pids/refs/ports of the answering node as `#PID<0.85.0>`; of other nodes with the node
  name in place of the 0 (the node's own index for it is not known here).

Iterative (a stack of pending pieces), so terms of any depth print.
"""

from __future__ import annotations

import re
from typing import Any

from ..errors import EncodeError
from .format import format_float as _shortest_float
from .types import (
    Atom,
    BitString,
    ExportFun,
    ImproperList,
    LocalFun,
    MapKey,
    Pid,
    Port,
    Reference,
)

# Operators that inspect prints unquoted (:+); every other punctuation atom is quoted.
_OPERATORS = frozenset(
    "+ - ! ^ not @ & * / ++ -- +++ --- .. <> in |> <<< >>> <<~ ~>> <~ ~> <~> < > <= >= == != =~ "
    "=== !== && &&& and || ||| or = | when <- -> \\\\ ** ..// ... . % %{} {} <<>>".split()
)
_ALIAS_PART = re.compile(r"[A-Z][A-Za-z0-9_]*").fullmatch
# An identifier atom: a letter or _, then letters, digits, _ and @, then maybe ? or !.
_IDENT = re.compile(r"[^\W\d][\w@]*[?!]?").fullmatch
_CHARLIST_OK = frozenset(range(32, 127)) | {7, 8, 9, 10, 11, 12, 13, 27}
_BIN_ESCAPES = {
    "\\": "\\\\", '"': '\\"', "\a": "\\a", "\b": "\\b", "\t": "\\t", "\n": "\\n",
    "\v": "\\v", "\f": "\\f", "\r": "\\r", "\x1b": "\\e", "\x7f": "\\d", "\ufeff": "\\uFEFF",
}
_PRINTABLE = re.compile(
    "[\x07-\x0d\x1b\x20-\x7f\xa0-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]*"
).fullmatch


class _Raw(str):
    """Text already in Elixir syntax."""

    __slots__ = ()


_SEP = _Raw(", ")
_ARROW = _Raw(" => ")
_BAR = _Raw(" | ")
_CLOSE_LIST = _Raw("]")
_CLOSE_BRACE = _Raw("}")


def _atom_kind(name: str) -> str:
    """"bare" (nil, true), "alias" (Elixir.Foo), "plain" (:ok), or "quoted" (:"a b")."""
    if name in ("nil", "true", "false"):
        return "bare"
    if name.startswith("Elixir") and (name == "Elixir" or (
            name[6] == "." and all(_ALIAS_PART(p) for p in name[7:].split(".")))):
        return "alias"
    if name in _OPERATORS:
        return "plain"
    if _IDENT(name) and (name.isascii() or _nfkc_stable(name)):
        return "plain"
    return "quoted"


def _nfkc_stable(name: str) -> bool:
    # Elixir's identifiers follow UAX #31 in NFKC form: `:Ö` is plain, `:"Ǆ"` is not
    import unicodedata

    return unicodedata.normalize("NFKC", name) == name


def _quote(text: str, quote: str) -> str:
    """"text" or 'text' with inspect's escapes (\\n, \\e, \\" and \\#{ for interpolation)."""
    out = []
    for i, ch in enumerate(text):
        if ch == quote:
            out.append("\\" + quote)
        elif ch == "#" and text.startswith("#{", i):
            out.append("\\#")
        elif ch in _BIN_ESCAPES and ch != '"':
            out.append(_BIN_ESCAPES[ch])
        else:
            out.append(ch)
    return quote + "".join(out) + quote


def format_atom(name: str) -> str:
    kind = _atom_kind(name)
    if kind == "bare":
        return name
    if kind == "alias":
        return name[7:] if name != "Elixir" else name
    if kind == "plain":
        return ":" + name
    return ":" + _quote(name, '"')


def format_float(f: float) -> str:
    # Inspect.Float: a whole number from 1.0 to 1.0e16 prints its digits (312500.0, not
    # the shortest form 3.125e5 that Float.to_string and Erlang give); else the shortest
    if 1.0 <= abs(f) < 1.0e16 and f.is_integer():
        return f"{int(f)}.0"
    return _shortest_float(f)


def _key(name: str) -> str:
    """A keyword key: `a: `, `"a b": `."""
    kind = _atom_kind(name)
    if kind in ("bare", "plain"):
        return name + ": "
    return _quote(name, '"') + ": "


def _is_keyword(pairs: Any) -> bool:
    for p in pairs:
        if not (type(p) is tuple and len(p) == 2 and _is_atom(p[0])
                and not (type(p[0]) is not bool and p[0].startswith("Elixir."))):
            return False
    return True


def _is_atom(v: Any) -> bool:
    return isinstance(v, Atom) or isinstance(v, bool)


def _atom_name(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def format_binary(data: bytes) -> str:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    if text is not None and _PRINTABLE(text):
        return _quote(text, '"')
    return "<<" + ", ".join(map(str, data)) + ">>"


def _bitstring(bits: BitString) -> str:
    data = bits.data
    last = f"{data[-1] >> (8 - bits.bits)}::size({bits.bits})"
    return "<<" + "".join(f"{b}, " for b in data[:-1]) + last + ">>"


def _charlist(codes: list[int]) -> str:
    return _quote("".join(map(chr, codes)), "'")


def _fun_name(name: str) -> str:
    return name if _atom_kind(name) in ("plain", "bare") else _quote(name, '"')


def _node_part(node: Atom, local: str | None) -> str:
    return "0" if local is not None and node == local else str(node)


def _struct_name(t: dict) -> str | None:
    mod = t.get(Atom("__struct__"))
    if isinstance(mod, Atom) and _atom_kind(mod) == "alias" and mod != "Elixir":
        return mod[7:]
    return None


def format_elixir(term: Any, *, node: str | None = None) -> str:
    """Elixir syntax for ``term`` (see the module doc); ``node`` is the answering node."""
    out: list[str] = []
    todo: list[Any] = [term]
    push = todo.append
    while todo:
        t = todo.pop()
        ty = type(t)
        if ty is _Raw:
            out.append(t)
        elif ty is Atom:
            out.append(format_atom(t))
        elif ty is bool:
            out.append("true" if t else "false")
        elif ty is int:
            out.append(str(t))
        elif ty is float:
            out.append(format_float(t))
        elif ty is str:
            codes = [ord(c) for c in t]
            if not codes:
                out.append("[]")
            elif all(c in _CHARLIST_OK for c in codes):
                out.append(_charlist(codes))
            else:
                push(codes)
        elif ty is list:
            if not t:
                out.append("[]")
            elif type(t[0]) is int and all(type(c) is int and c in _CHARLIST_OK for c in t):
                out.append(_charlist(t))
            else:
                out.append("[")
                push(_CLOSE_LIST)
                _push_items(push, t, _is_keyword(t))
        elif ty is tuple:
            if not t:
                out.append("{}")
                continue
            out.append("{")
            push(_CLOSE_BRACE)
            _push_items(push, t, False)
        elif ty is bytes:
            out.append(format_binary(t))
        elif ty is dict:
            pairs = [(k.term if type(k) is MapKey else k, v) for k, v in t.items()]
            name = _struct_name(t)
            if name is not None:
                pairs = [(k, v) for k, v in pairs if k != "__struct__" or type(k) is not Atom]
                out.append("%" + name + "{")
            else:
                out.append("%{")
            push(_CLOSE_BRACE)
            keyword = _is_keyword(pairs)
            for i in range(len(pairs) - 1, -1, -1):
                k, v = pairs[i]
                push(v)
                if keyword:
                    push(_Raw(_key(_atom_name(k))))
                else:
                    push(_ARROW)
                    push(k)
                if i:
                    push(_SEP)
        elif t is None:
            out.append(":undefined")
        elif ty is ImproperList:
            if not t.elements:
                push(t.tail)
                continue
            out.append("[")
            push(_CLOSE_LIST)
            push(t.tail)
            push(_BAR)
            _push_items(push, t.elements, False)
        elif ty is MapKey:
            push(t.term)
        elif ty is Pid:
            out.append(f"#PID<{_node_part(t.node, node)}.{t.id}.{t.serial}>")
        elif ty is Reference:
            words = ".".join(str(i) for i in reversed(t.ids))
            out.append(f"#Reference<{_node_part(t.node, node)}.{words}>")
        elif ty is Port:
            out.append(f"#Port<{_node_part(t.node, node)}.{t.id}>")
        elif ty is ExportFun:
            mod = format_atom(t.module)
            out.append(f"&{mod}.{_fun_name(t.function)}/{t.arity}")
        elif ty is LocalFun:
            out.append(f"#Function<{format_atom(t.module)}/{t.arity}>")
        elif ty is BitString:
            out.append(format_binary(t.data) if t.bits == 8 else _bitstring(t))
        # subclasses of built-ins, after the exact types (bool stays apart from int)
        elif isinstance(t, bool):
            out.append("true" if t else "false")
        elif isinstance(t, int):
            out.append(str(int(t)))
        elif isinstance(t, float):
            out.append(format_float(float(t)))
        elif isinstance(t, Atom):
            out.append(format_atom(t))
        elif isinstance(t, str):
            push(str(t))
        elif isinstance(t, (bytes, bytearray, memoryview)):
            out.append(format_binary(bytes(t)))
        elif isinstance(t, tuple):
            push(tuple(t))
        elif isinstance(t, list):
            push(list(t))
        elif isinstance(t, dict):
            push(dict(t))
        else:
            raise EncodeError(f"no Erlang term for a Python {ty.__name__}")
    return "".join(out)


def _push_items(push, items, keyword: bool) -> None:
    """Push a sequence's elements (last first), with separators; keyword pairs as `k: v`."""
    for i in range(len(items) - 1, -1, -1):
        item = items[i]
        if keyword:
            push(item[1])
            push(_Raw(_key(_atom_name(item[0]))))
        else:
            push(item)
        if i:
            push(_SEP)
