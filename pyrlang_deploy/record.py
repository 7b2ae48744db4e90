"""Value records without dataclasses.

`dataclasses` (and the inspect/ast/dis it loads) cost ~15 ms at every CLI start; the
records on the `rpc` path (epmd.NodePort, handshake.HandshakeResult, Settings, Cluster,
Reach...) only need what this gives, as a dataclass would: construction by position
(field order) or keyword, defaults (`factory(list)` for a fresh one per record),
equality, a repr (less the `_hidden` fields), `replace(**changes)`, and for a `_frozen`
record no assignment after construction and a hash.

A subclass lists its fields in `_fields_` and usually sets `__slots__ = _fields_`.
"""

from __future__ import annotations

from collections.abc import Callable

TYPE_CHECKING = False  # typing is not imported at run time: see cli/fastpath.py
if TYPE_CHECKING:
    from typing import Any, ClassVar


class factory:  # noqa: N801 (reads like dataclasses.field(default_factory=...))
    """A default made afresh for each record: ``factory(list)``."""

    __slots__ = ("make",)

    def __init__(self, make: Callable[[], Any]) -> None:
        self.make = make


class Record:
    __slots__ = ()
    _fields_: ClassVar[tuple[str, ...]] = ()
    _defaults: ClassVar[dict[str, Any]] = {}
    _hidden: ClassVar[tuple[str, ...]] = ()
    _frozen: ClassVar[bool] = False

    def __init_subclass__(cls, **kw: Any) -> None:
        super().__init_subclass__(**kw)
        if not cls._frozen:
            cls.__hash__ = None  # type: ignore[assignment]  # mutable and compared by value, as a dataclass

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        names = self._fields_
        if len(args) > len(names):
            raise TypeError(f"{type(self).__name__} takes {len(names)} fields, got {len(args)}")
        values = dict(zip(names, args))
        for k, v in kwargs.items():
            if k not in names or k in values:
                raise TypeError(f"{type(self).__name__}: unexpected or repeated field {k!r}")
            values[k] = v
        for k in names:
            if k not in values:
                if k not in self._defaults:
                    raise TypeError(f"{type(self).__name__}: missing field {k!r}")
                d = self._defaults[k]
                values[k] = d.make() if isinstance(d, factory) else d
            object.__setattr__(self, k, values[k])
        post = getattr(self, "__post_init__", None)
        if post is not None:
            post()

    def _values(self) -> tuple[Any, ...]:
        return tuple(getattr(self, k) for k in self._fields_)

    def replace(self, **changes: Any) -> Any:
        """A copy with some fields changed (dataclasses.replace)."""
        return type(self)(**{**{k: getattr(self, k) for k in self._fields_}, **changes})

    def __setattr__(self, name: str, value: Any) -> None:
        if self._frozen:
            raise AttributeError(f"{type(self).__name__} is frozen")
        object.__setattr__(self, name, value)

    def __delattr__(self, name: str) -> None:
        if self._frozen:
            raise AttributeError(f"{type(self).__name__} is frozen")
        object.__delattr__(self, name)

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return self._values() == other._values()  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash((type(self).__name__, self._values()))

    def __repr__(self) -> str:
        inner = ", ".join(f"{k}={getattr(self, k)!r}" for k in self._fields_ if k not in self._hidden)
        return f"{type(self).__name__}({inner})"
