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
  map                            dict (a key Python cannot hash, a list or map,
                                 decodes as a hashable wrapper that re-encodes
                                 to the same Erlang key; see the codec)
  pid / reference / port         Pid / Reference / Port
  fun M:F/A                      ExportFun
  local fun (closure)            LocalFun (opaque; re-encodes to the same bytes)

Encoding direction: Python str encodes as a charlist (list of code points, "é" is
[233]); bytes/bytearray/memoryview as a binary; None as the atom ``undefined``.
Charlists and binaries stay distinct both ways; non-ASCII text is exact both ways.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


class Atom(str):
    """An Erlang atom. A str subclass so it compares equal to its name."""

    __slots__ = ()

    def __repr__(self) -> str:
        return f"Atom({str.__repr__(self)})"


@dataclass(frozen=True, slots=True)
class Pid:
    node: Atom
    id: int
    serial: int
    creation: int

    def __str__(self) -> str:
        return f"<{self.node}.{self.id}.{self.serial}>"


@dataclass(frozen=True, slots=True)
class Reference:
    node: Atom
    creation: int
    ids: tuple[int, ...]

    def __str__(self) -> str:
        return f"#Ref<{self.node}." + ".".join(str(i) for i in reversed(self.ids)) + ">"


@dataclass(frozen=True, slots=True)
class Port:
    node: Atom
    id: int
    creation: int

    def __str__(self) -> str:
        return f"#Port<{self.node}.{self.id}>"


@dataclass(frozen=True, slots=True)
class ExportFun:
    module: Atom
    function: Atom
    arity: int


@dataclass(frozen=True, slots=True)
class LocalFun:
    """A closure from a node. Opaque: kept as its encoded bytes so it can be sent back."""

    module: Atom
    arity: int
    raw: bytes  # the complete NEW_FUN_EXT encoding, tag included


@dataclass(frozen=True, slots=True)
class BitString:
    """A bitstring whose length is not a whole number of bytes.

    ``bits`` is how many bits of the last byte are used (1..8); unused low bits are zero.
    """

    data: bytes
    bits: int


@dataclass(frozen=True, slots=True)
class ImproperList:
    elements: tuple[Any, ...]
    tail: Any
