"""Erlang syntax for decoded terms: what the Erlang shell would print (~tp, one line).

Iterative (a stack of pending pieces), so any term the decoder can build can be
printed. Output that is a term literal (no pids, refs, ports, local funs) parses
back, both with ``parse_term`` and with erl_parse on a node.
"""

from __future__ import annotations

from ..errors import EncodeError
from .decoder import _decode_body
from .lazy_re import LazyMatch
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

TYPE_CHECKING = False  # typing is not imported at run time: see cli/fastpath.py
if TYPE_CHECKING:
    from typing import Any

# Words erl_scan makes reserved (maybe/else: reserved when the maybe feature is
# on, the default from OTP 27, so they are quoted to read back everywhere).
_RESERVED = frozenset(
    "after and andalso band begin bnot bor bsl bsr bxor case catch cond div end else "
    "fun if let maybe not of or orelse receive rem try when xor".split()
)
# erl_scan's unquoted atom: a lowercase (latin-1) letter, then letters, digits, _ and @.
_BARE_ATOM = LazyMatch("[a-z\xdf-\xf6\xf8-\xff][a-zA-Z0-9_@\xc0-\xd6\xd8-\xf6\xf8-\xff]*", "fullmatch")
_PRINTABLE_ASCII = LazyMatch(rb"[\x08-\x0d\x1b\x20-\x7e]*", "fullmatch")
_PRINTABLE_UNICODE = LazyMatch(
    "[\x08-\x0d\x1b\x20-\x7e\xa0-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]*", "fullmatch"
)
_SURROGATE = LazyMatch("[\ud800-\udfff]", "search")
_ESCAPES = {
    "\\": "\\\\",
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
    "\v": "\\v",
    "\b": "\\b",
    "\f": "\\f",
    "\x1b": "\\e",
    "\x7f": "\\d",
}


class _Raw(str):
    """Text already in Erlang syntax (as opposed to a str term, a charlist)."""

    __slots__ = ()


_COMMA = _Raw(",")
_ARROW = _Raw(" => ")
_BAR = _Raw("|")
_CLOSE_LIST = _Raw("]")
_CLOSE_BRACE = _Raw("}")


def _escape(text: str, quote: str) -> str:
    if text.isprintable() and "\\" not in text and quote not in text:
        return text  # the common case: nothing to escape
    out = []
    for ch in text:
        if ch == quote:
            out.append("\\" + quote)
        elif ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        elif ch.isprintable():
            out.append(ch)
        else:
            out.append(f"\\x{{{ord(ch):X}}}")
    return "".join(out)


def format_atom(name: str) -> str:
    if _BARE_ATOM(name) and name not in _RESERVED:
        return name
    return "'" + _escape(name, "'") + "'"


_TWO_53 = float(1 << 53)


def format_float(value: float) -> str:
    """Like float_to_list(F, [short]) and ~p since OTP 25: the shortest digits
    that read back exactly, in plain or exponent form, whichever is shorter."""
    text = repr(value)
    if value - value:  # inf/nan: no Erlang form; show Python's
        return text
    sign = ""
    if text[0] == "-":
        sign, text = "-", text[1:]
    mantissa, _, exp_text = text.partition("e")
    whole, _, frac = mantissa.partition(".")
    digits = whole + frac
    point = len(whole) + (int(exp_text) if exp_text else 0)  # value = 0.DIGITS * 10**point
    stripped = digits.lstrip("0")
    point -= len(digits) - len(stripped)
    digits = stripped.rstrip("0")
    if not digits:
        return sign + "0.0"
    n = len(digits)
    if point <= 0:
        plain = "0." + "0" * -point + digits
    elif point >= n:
        plain = digits + "0" * (point - n) + ".0"
    else:
        plain = digits[:point] + "." + digits[point:]
    scientific = digits[0] + "." + (digits[1:] or "0") + "e" + str(point - 1)
    # From 2**53 on, OTP always uses the exponent form (plain digits there
    # would suggest a precision the float does not have).
    if abs(value) >= _TWO_53 or len(scientific) < len(plain):
        return sign + scientific
    return sign + plain


def _format_binary(data: bytes) -> str:
    if not data:
        return "<<>>"
    if _PRINTABLE_ASCII(data):
        return '<<"' + _escape(data.decode("ascii"), '"') + '">>'
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    if text is not None and _PRINTABLE_UNICODE(text):
        return '<<"' + _escape(text, '"') + '"/utf8>>'
    return "<<" + ",".join(map(str, data)) + ">>"


def _format_bitstring(bits: BitString) -> str:
    data = bits.data
    last = f"{data[-1] >> (8 - bits.bits)}:{bits.bits}"
    return "<<" + "".join(f"{b}," for b in data[:-1]) + last + ">>"


def _format_charlist(text: str) -> str:
    if not text:
        return "[]"
    if _SURROGATE(text):  # \x{D800} is not valid in an Erlang string literal
        return "[" + ",".join(str(ord(c)) for c in text) + "]"
    return '"' + _escape(text, '"') + '"'


def _local_fun(fun: LocalFun) -> str:
    # #Fun<Module.OldIndex.OldUniq>, as the shell prints it.
    try:
        _, pos = _decode_body(fun.raw, 30)
        old_index, pos = _decode_body(fun.raw, pos)
        old_uniq, _ = _decode_body(fun.raw, pos)
        return f"#Fun<{fun.module}.{old_index}.{old_uniq}>"
    except Exception:  # an odd fun must not stop the printing of a whole result
        return f"#Fun<{fun.module}/{fun.arity}>"


def _node_part(node: Atom, local: str | None) -> str:
    return "0" if node == local else str(node)


def format_term(term: Any, *, node: str | None = None) -> str:
    """Erlang syntax for ``term``.

    Pids, refs and ports of ``node`` (if given) print as that node's shell shows
    them (<0.85.0>); others carry their node name (<a@host.85.0>).
    """
    out: list[str] = []
    todo: list[Any] = [term]
    while todo:
        t = todo.pop()
        ty = type(t)
        if ty is _Raw:
            out.append(t)
        elif ty is Atom:
            out.append(format_atom(t))
        elif ty is int:
            out.append(str(t))
        elif ty is str:
            out.append(_format_charlist(t))
        elif ty is tuple or ty is list:
            if not t:
                out.append("{}" if ty is tuple else "[]")
                continue
            out.append("{" if ty is tuple else "[")
            todo.append(_CLOSE_BRACE if ty is tuple else _CLOSE_LIST)
            for i in range(len(t) - 1, 0, -1):
                todo.append(t[i])
                todo.append(_COMMA)
            todo.append(t[0])
        elif ty is bytes:
            out.append(_format_binary(t))
        elif ty is float:
            out.append(format_float(t))
        elif ty is bool:
            out.append("true" if t else "false")
        elif ty is dict:
            out.append("#{")
            todo.append(_CLOSE_BRACE)
            pairs = list(t.items())
            for i in range(len(pairs) - 1, -1, -1):
                key, value = pairs[i]
                todo.append(value)
                todo.append(_ARROW)
                todo.append(key)
                if i:
                    todo.append(_COMMA)
        elif t is None:
            out.append("undefined")
        elif ty is ImproperList:
            if not t.elements:  # [ | T] is just T
                todo.append(t.tail)
                continue
            out.append("[")
            todo.append(_CLOSE_LIST)
            todo.append(t.tail)
            todo.append(_BAR)
            elements = t.elements
            for i in range(len(elements) - 1, 0, -1):
                todo.append(elements[i])
                todo.append(_COMMA)
            todo.append(elements[0])
        elif ty is MapKey:
            todo.append(t.term)
        elif ty is Pid:
            out.append(f"<{_node_part(t.node, node)}.{t.id}.{t.serial}>")
        elif ty is Reference:
            words = ".".join(str(i) for i in reversed(t.ids))
            out.append(f"#Ref<{_node_part(t.node, node)}.{words}>")
        elif ty is Port:
            out.append(f"#Port<{_node_part(t.node, node)}.{t.id}>")
        elif ty is ExportFun:
            out.append(f"fun {format_atom(t.module)}:{format_atom(t.function)}/{t.arity}")
        elif ty is LocalFun:
            out.append(_local_fun(t))
        elif ty is BitString:
            out.append(_format_binary(t.data) if t.bits == 8 else _format_bitstring(t))
        # subclasses of built-ins, after the exact types so bool stays apart from int
        elif isinstance(t, bool):
            out.append("true" if t else "false")
        elif isinstance(t, int):
            out.append(str(int(t)))
        elif isinstance(t, float):
            out.append(format_float(float(t)))
        elif isinstance(t, Atom):
            out.append(format_atom(t))
        elif isinstance(t, str):
            out.append(_format_charlist(str(t)))
        elif isinstance(t, (bytes, bytearray, memoryview)):
            out.append(_format_binary(bytes(t)))
        elif isinstance(t, tuple):
            todo.append(tuple(t))
        elif isinstance(t, list):
            todo.append(list(t))
        elif isinstance(t, dict):
            todo.append(dict(t))
        else:
            raise EncodeError(f"no Erlang term for a Python {ty.__name__}")
    return "".join(out)


def safe_repr(value: Any, limit: int | None = None) -> str:
    """``repr(value)`` for terms and the containers holding them, with an explicit
    stack: a million-deep reply has a repr too. ``limit`` cuts the text (with ...)."""
    from .types import _Record

    out: list[str] = []
    size = 0
    todo: list[Any] = [value]
    while todo:
        if limit is not None and size > limit:
            break
        v = todo.pop()
        ty = type(v)
        if ty is _Raw:
            piece = v
        elif ty is list or ty is tuple:
            if not v:
                piece = "[]" if ty is list else "()"
            else:
                piece = "[" if ty is list else "("
                todo.append(_Raw("]" if ty is list else (",)" if len(v) == 1 else ")")))
                _push_items(todo, v)
        elif ty is dict:
            piece = "{"
            todo.append(_CLOSE_BRACE)
            pairs = list(v.items())
            for i in range(len(pairs) - 1, -1, -1):
                todo.append(pairs[i][1])
                todo.append(_Raw(": "))
                todo.append(pairs[i][0])
                if i:
                    todo.append(_Raw(", "))
        elif isinstance(v, _Record):
            piece = type(v).__name__ + "("
            todo.append(_Raw(")"))
            names = v.__slots__
            for i in range(len(names) - 1, -1, -1):
                todo.append(getattr(v, names[i]))
                todo.append(_Raw(f"{names[i]}="))
                if i:
                    todo.append(_Raw(", "))
        elif ty is MapKey:
            piece = "MapKey("
            todo.append(_Raw(")"))
            todo.append(v.term)
        else:
            piece = repr(v)
        out.append(piece)
        size += len(piece)
    text = "".join(out)
    if limit is not None and (todo or len(text) > limit):
        text = text[: max(limit - 3, 0)] + "..."
    return text


def _push_items(todo: list, items: Any) -> None:
    for i in range(len(items) - 1, 0, -1):
        todo.append(items[i])
        todo.append(_Raw(", "))
    todo.append(items[0])
