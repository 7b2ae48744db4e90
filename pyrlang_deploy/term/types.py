"""Python types for the Erlang values that have no natural Python counterpart.

The mapping between Erlang and Python (documented in README "Term mapping"):

  Erlang                         Python
  ------------------------------ -----------------------------------------------
  integer (any size)             int
  float                          float
  atom true / false              bool
  other atoms                    Atom (a str subclass)
  tuple                          tuple
  [] (nil)                       []
  proper list                    list; a non-empty list of integers that
                                 io_lib:printable_unicode_list/1 accepts decodes
                                 as str (a charlist), exactly when the Erlang shell
                                 would print it as "..."
  improper list                  ImproperList
  binary                         bytes
  bitstring (not whole bytes)    BitString
  map                            dict (a key Python cannot hash, e.g. a list or
                                 map, decodes as MapKey, a hashable wrapper that
                                 re-encodes to the same Erlang key; so do all keys
                                 of a map whose keys Python would merge, such as
                                 1 and 1.0, or the atom a and the string "a")
  pid / reference / port         Pid / Reference / Port
  fun M:F/A                      ExportFun
  local fun (closure)            LocalFun (opaque; re-encodes to the same bytes)

Encoding direction: Python str encodes as a charlist (list of code points, "é" is
[233]); bytes/bytearray/memoryview as a binary; None as the atom ``undefined``
(which decodes as Atom("undefined")); an empty str as []. A BitString with
``bits == 8`` is a plain binary. Charlists and binaries stay distinct both ways;
non-ASCII text is exact both ways.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing is not imported at run time: see cli/fastpath.py
if TYPE_CHECKING:
    from typing import Any



class Atom(str):
    """An Erlang atom. A str subclass so it compares equal to its name."""

    __slots__ = ()

    def __repr__(self) -> str:
        return f"Atom({str.__repr__(self)})"


class _Record:
    """A small frozen value class: fields in __slots__, equality and hash by value.

    Hand-written rather than @dataclass(frozen=True, slots=True): generating seven
    dataclasses cost ~4 ms at import, a third of the CLI's own start-up budget.
    """

    __slots__ = ()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        names = self.__slots__
        if len(args) > len(names):
            raise TypeError(f"{type(self).__name__} takes {len(names)} fields, got {len(args)}")
        set_ = object.__setattr__
        for name, value in zip(names, args):
            set_(self, name, value)
        for name in names[len(args):]:
            try:
                set_(self, name, kwargs.pop(name))
            except KeyError:
                raise TypeError(f"{type(self).__name__}: missing field {name!r}") from None
        if kwargs:
            raise TypeError(f"{type(self).__name__}: unknown field(s) {', '.join(kwargs)}")

    def _values(self) -> tuple[Any, ...]:
        return tuple([getattr(self, n) for n in self.__slots__])

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return self._values() == other._values()  # type: ignore[attr-defined]

    def __ne__(self, other: object) -> bool:
        eq = self.__eq__(other)
        return eq if eq is NotImplemented else not eq

    def __hash__(self) -> int:
        return hash((type(self).__name__, self._values()))

    def __repr__(self) -> str:
        from .format import safe_repr  # iterative: fields may nest a term any depth
        return safe_repr(self)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable")

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), self._values())


class Pid(_Record):
    __slots__ = ("node", "id", "serial", "creation")
    __match_args__ = __slots__
    node: Atom
    id: int
    serial: int
    creation: int

    def __str__(self) -> str:
        return f"<{self.node}.{self.id}.{self.serial}>"


class Reference(_Record):
    __slots__ = ("node", "creation", "ids")
    __match_args__ = __slots__
    node: Atom
    creation: int
    ids: tuple[int, ...]

    def __str__(self) -> str:
        return f"#Ref<{self.node}." + ".".join(str(i) for i in reversed(self.ids)) + ">"


class Port(_Record):
    __slots__ = ("node", "id", "creation")
    __match_args__ = __slots__
    node: Atom
    id: int
    creation: int

    def __str__(self) -> str:
        return f"#Port<{self.node}.{self.id}>"


class ExportFun(_Record):
    __slots__ = ("module", "function", "arity")
    __match_args__ = __slots__
    module: Atom
    function: Atom
    arity: int


class LocalFun(_Record):
    """A closure from a node. Opaque: kept as its encoded bytes so it can be sent back."""

    __slots__ = ("module", "arity", "raw")   # raw: the complete NEW_FUN_EXT encoding, tag included
    __match_args__ = __slots__
    module: Atom
    arity: int
    raw: bytes


class BitString(_Record):
    """A bitstring whose length is not a whole number of bytes.

    ``bits`` is how many bits of the last byte are used (1..8); unused low bits are zero.
    """

    __slots__ = ("data", "bits")
    __match_args__ = __slots__
    data: bytes
    bits: int


class ImproperList(_Record):
    __slots__ = ("elements", "tail")
    __match_args__ = __slots__
    elements: tuple[Any, ...]
    tail: Any


class MapKey:
    """A map key that Python cannot use as a dict key directly (a list, a map, a
    tuple holding one), or one Python would merge with another key (1 and 1.0).

    Equality and hash follow Erlang's exact equality (=:=): two MapKeys are equal
    when their terms encode to the same Erlang value. Encodes as ``term``. Treat
    ``term`` as immutable: the identity is computed once, at construction.
    """

    __slots__ = ("term", "_ident")

    def __init__(self, term: Any) -> None:
        from .encoder import canonical_bytes  # late: the encoder imports this module

        self.term = term
        self._ident = canonical_bytes(term)

    def __eq__(self, other: object) -> bool:
        if type(other) is not MapKey:
            return NotImplemented
        return self._ident == other._ident

    def __hash__(self) -> int:
        return hash(self._ident)

    def __repr__(self) -> str:
        from .format import safe_repr
        return safe_repr(self)
