"""Control messages of the distribution protocol: one small type per operation.

Each type knows its op code and the layout of its control tuple, builds the tuple
(:meth:`Control.term`) and is parsed back from a decoded one (:func:`parse`).
Types whose frame carries a second term (a message, or the exit reason of the
payload forms) have ``PAYLOAD = True``. Trace tokens of the ``*_TT`` forms are
kept but otherwise ignored.

The types are plain slotted classes rather than dataclasses: two dozen
dataclasses cost ~10 ms of import time, which every CLI start would pay.
"""

from __future__ import annotations

from ..term.types import Atom
from .debuglog import get_logger

TYPE_CHECKING = False  # typing is not imported at run time: see cli/fastpath.py
if TYPE_CHECKING:
    from typing import Any, ClassVar

log = get_logger(__name__)

EMPTY = Atom("")
_ = None  # an unused tuple slot: '' when we build, ignored when we parse


class Control:
    OP: ClassVar[int]
    PAYLOAD: ClassVar[bool] = False
    # the control tuple after the op code: a field name per slot, or _ for unused
    LAYOUT: ClassVar[tuple[str | None, ...]] = ()
    __slots__ = ()

    def __init__(self, *values: Any) -> None:
        names = self.__slots__
        if len(values) != len(names):
            raise TypeError(f"{type(self).__name__} takes {len(names)} values, got {len(values)}")
        for name, value in zip(names, values):
            setattr(self, name, value)

    def values(self) -> tuple:
        return tuple(getattr(self, n) for n in self.__slots__)

    def term(self) -> tuple:
        return (self.OP, *(EMPTY if f is None else getattr(self, f) for f in self.LAYOUT))

    @classmethod
    def from_term(cls, t: tuple) -> Control:
        if len(t) < 1 + len(cls.LAYOUT):
            raise IndexError(cls.__name__)
        obj = cls.__new__(cls)
        for i, f in enumerate(cls.LAYOUT, 1):
            if f is not None:
                setattr(obj, f, t[i])
        return obj

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other.values() == self.values()  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash((type(self), self.values()))

    def __repr__(self) -> str:
        inner = ", ".join(f"{n}={getattr(self, n)!r}" for n in self.__slots__)
        return f"{type(self).__name__}({inner})"


def _op(op: int, layout: tuple[str | None, ...], payload: bool = False):
    """Class decorator: op code, tuple layout, slots in constructor order."""

    def make(cls: type) -> type:
        fields = tuple(f for f in layout if f is not None)
        ns = {k: v for k, v in cls.__dict__.items() if k not in ("__dict__", "__weakref__")}
        ns.update(OP=op, LAYOUT=layout, PAYLOAD=payload, __slots__=fields)
        return type(cls.__name__, (Control,), ns)

    return make


# --- links ---------------------------------------------------------------------------


@_op(1, ("from_pid", "to_pid"))
class Link:
    pass


@_op(4, ("from_pid", "to_pid"))
class Unlink:
    """The pre-OTP 26 unlink; only sent by peers without UNLINK_ID."""


@_op(35, ("id", "from_pid", "to_pid"))
class UnlinkId:
    pass


@_op(36, ("id", "from_pid", "to_pid"))
class UnlinkIdAck:
    pass


# --- sends ---------------------------------------------------------------------------


@_op(2, (_, "to_pid"), payload=True)
class Send:
    pass


@_op(12, (_, "to_pid", "token"), payload=True)
class SendTT:
    pass


@_op(22, ("from_pid", "to_pid"), payload=True)
class SendSender:
    pass


@_op(23, ("from_pid", "to_pid", "token"), payload=True)
class SendSenderTT:
    pass


@_op(6, ("from_pid", _, "to_name"), payload=True)
class RegSend:
    pass


@_op(16, ("from_pid", _, "to_name", "token"), payload=True)
class RegSendTT:
    pass


@_op(33, ("from_pid", "alias"), payload=True)
class AliasSend:
    pass


@_op(34, ("from_pid", "alias", "token"), payload=True)
class AliasSendTT:
    pass


# OTP 28's one op for alias, priority and name sends and exit/2 signals: ``flags``
# says what ``to`` is and whether the payload is a message or an exit reason; a
# trace token follows when flags has ALTACT_TOKEN (ignored here, like the *_TT ones).
ALTACT_PRIO = 1 << 0
ALTACT_TOKEN = 1 << 1
ALTACT_ALIAS = 1 << 2  # ``to`` is an alias (a reference)
ALTACT_NAME = 1 << 3  # ``to`` is a registered name (an atom)
ALTACT_EXIT = 1 << 4  # an exit/2 signal; the payload is its reason


@_op(37, ("flags", "from_pid", "to"), payload=True)
class AltactSigSend:
    def legacy(self) -> Control | None:
        """The pre-28 op that means the same (a priority send is still a send);
        None for exit/2 to an alias, which no older op can say."""
        f = self.flags if isinstance(self.flags, int) else 0
        if f & ALTACT_EXIT:
            return None if f & ALTACT_ALIAS else PayloadExit2(self.from_pid, self.to)
        if f & ALTACT_ALIAS:
            return AliasSend(self.from_pid, self.to)
        if f & ALTACT_NAME:
            return RegSend(self.from_pid, self.to)
        return SendSender(self.from_pid, self.to)


# --- exits: EXIT is a broken link's signal, EXIT2 is exit/2 ----------------------------


@_op(3, ("from_pid", "to_pid", "reason"))
class Exit:
    pass


@_op(13, ("from_pid", "to_pid", "token", "reason"))
class ExitTT:
    pass


@_op(8, ("from_pid", "to_pid", "reason"))
class Exit2:
    pass


@_op(18, ("from_pid", "to_pid", "token", "reason"))
class Exit2TT:
    pass


@_op(24, ("from_pid", "to_pid"), payload=True)
class PayloadExit:
    """EXIT with the reason as the frame's second term (EXIT_PAYLOAD peers)."""


@_op(25, ("from_pid", "to_pid", "token"), payload=True)
class PayloadExitTT:
    pass


@_op(26, ("from_pid", "to_pid"), payload=True)
class PayloadExit2:
    pass


@_op(27, ("from_pid", "to_pid", "token"), payload=True)
class PayloadExit2TT:
    pass


# --- monitors: to_proc / from_proc is a pid or a registered name ------------------------


@_op(19, ("from_pid", "to_proc", "ref"))
class MonitorP:
    pass


@_op(20, ("from_pid", "to_proc", "ref"))
class DemonitorP:
    pass


@_op(21, ("from_proc", "to_pid", "ref", "reason"))
class MonitorPExit:
    pass


@_op(28, ("from_proc", "to_pid", "ref"), payload=True)
class PayloadMonitorPExit:
    pass


CONTROL_TYPES: dict[int, type[Control]] = {
    c.OP: c
    for c in (
        Link, Unlink, UnlinkId, UnlinkIdAck,
        Send, SendTT, SendSender, SendSenderTT, RegSend, RegSendTT, AliasSend, AliasSendTT, AltactSigSend,
        Exit, ExitTT, Exit2, Exit2TT, PayloadExit, PayloadExitTT, PayloadExit2, PayloadExit2TT,
        MonitorP, DemonitorP, MonitorPExit, PayloadMonitorPExit,
    )
}


def parse(term: Any) -> Control | None:
    """The typed control message for a decoded control tuple; None for ops we ignore."""
    if not isinstance(term, tuple) or not term or type(term[0]) is not int:
        log.debug("ignoring malformed control message of type %s", type(term).__name__)
        return None
    cls = CONTROL_TYPES.get(term[0])
    if cls is None:
        log.debug("ignoring control op %d", term[0])
        return None
    try:
        return cls.from_term(term)
    except IndexError:
        log.debug("ignoring short control tuple for op %d", term[0])
        return None
