"""Control messages of the distribution protocol: one small type per operation.

Each type knows its op code, builds its control tuple (:meth:`term`) and is
parsed back from a decoded control tuple (:func:`parse`). Types whose frame
carries a second term (a message or an exit reason) have ``PAYLOAD = True``;
for the payload forms of exits and monitor exits the reason travels there.
Trace tokens of the ``*_TT`` forms are kept but otherwise ignored.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, ClassVar

from ..term.types import Atom, Pid, Reference

log = logging.getLogger(__name__)

EMPTY = Atom("")


class Control:
    OP: ClassVar[int]
    PAYLOAD: ClassVar[bool] = False

    def term(self) -> tuple:
        raise NotImplementedError

    @classmethod
    def from_term(cls, t: tuple) -> "Control":
        raise NotImplementedError


# --- links ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Link(Control):
    OP: ClassVar[int] = 1
    from_pid: Pid
    to_pid: Pid

    def term(self) -> tuple:
        return (1, self.from_pid, self.to_pid)

    @classmethod
    def from_term(cls, t: tuple) -> "Link":
        return cls(t[1], t[2])


@dataclass(frozen=True, slots=True)
class Unlink(Control):
    """The pre-OTP 26 unlink; only sent by peers without UNLINK_ID."""

    OP: ClassVar[int] = 4
    from_pid: Pid
    to_pid: Pid

    def term(self) -> tuple:
        return (4, self.from_pid, self.to_pid)

    @classmethod
    def from_term(cls, t: tuple) -> "Unlink":
        return cls(t[1], t[2])


@dataclass(frozen=True, slots=True)
class UnlinkId(Control):
    OP: ClassVar[int] = 35
    id: int
    from_pid: Pid
    to_pid: Pid

    def term(self) -> tuple:
        return (35, self.id, self.from_pid, self.to_pid)

    @classmethod
    def from_term(cls, t: tuple) -> "UnlinkId":
        return cls(t[1], t[2], t[3])


@dataclass(frozen=True, slots=True)
class UnlinkIdAck(Control):
    OP: ClassVar[int] = 36
    id: int
    from_pid: Pid
    to_pid: Pid

    def term(self) -> tuple:
        return (36, self.id, self.from_pid, self.to_pid)

    @classmethod
    def from_term(cls, t: tuple) -> "UnlinkIdAck":
        return cls(t[1], t[2], t[3])


# --- sends --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Send(Control):
    OP: ClassVar[int] = 2
    PAYLOAD: ClassVar[bool] = True
    to_pid: Pid

    def term(self) -> tuple:
        return (2, EMPTY, self.to_pid)

    @classmethod
    def from_term(cls, t: tuple) -> "Send":
        return cls(t[2])


@dataclass(frozen=True, slots=True)
class SendTT(Control):
    OP: ClassVar[int] = 12
    PAYLOAD: ClassVar[bool] = True
    to_pid: Pid
    token: Any

    def term(self) -> tuple:
        return (12, EMPTY, self.to_pid, self.token)

    @classmethod
    def from_term(cls, t: tuple) -> "SendTT":
        return cls(t[2], t[3])


@dataclass(frozen=True, slots=True)
class SendSender(Control):
    OP: ClassVar[int] = 22
    PAYLOAD: ClassVar[bool] = True
    from_pid: Pid
    to_pid: Pid

    def term(self) -> tuple:
        return (22, self.from_pid, self.to_pid)

    @classmethod
    def from_term(cls, t: tuple) -> "SendSender":
        return cls(t[1], t[2])


@dataclass(frozen=True, slots=True)
class SendSenderTT(Control):
    OP: ClassVar[int] = 23
    PAYLOAD: ClassVar[bool] = True
    from_pid: Pid
    to_pid: Pid
    token: Any

    def term(self) -> tuple:
        return (23, self.from_pid, self.to_pid, self.token)

    @classmethod
    def from_term(cls, t: tuple) -> "SendSenderTT":
        return cls(t[1], t[2], t[3])


@dataclass(frozen=True, slots=True)
class RegSend(Control):
    OP: ClassVar[int] = 6
    PAYLOAD: ClassVar[bool] = True
    from_pid: Pid
    to_name: Atom

    def term(self) -> tuple:
        return (6, self.from_pid, EMPTY, self.to_name)

    @classmethod
    def from_term(cls, t: tuple) -> "RegSend":
        return cls(t[1], t[3])


@dataclass(frozen=True, slots=True)
class RegSendTT(Control):
    OP: ClassVar[int] = 16
    PAYLOAD: ClassVar[bool] = True
    from_pid: Pid
    to_name: Atom
    token: Any

    def term(self) -> tuple:
        return (16, self.from_pid, EMPTY, self.to_name, self.token)

    @classmethod
    def from_term(cls, t: tuple) -> "RegSendTT":
        return cls(t[1], t[3], t[4])


@dataclass(frozen=True, slots=True)
class AliasSend(Control):
    OP: ClassVar[int] = 33
    PAYLOAD: ClassVar[bool] = True
    from_pid: Pid
    alias: Reference

    def term(self) -> tuple:
        return (33, self.from_pid, self.alias)

    @classmethod
    def from_term(cls, t: tuple) -> "AliasSend":
        return cls(t[1], t[2])


@dataclass(frozen=True, slots=True)
class AliasSendTT(Control):
    OP: ClassVar[int] = 34
    PAYLOAD: ClassVar[bool] = True
    from_pid: Pid
    alias: Reference
    token: Any

    def term(self) -> tuple:
        return (34, self.from_pid, self.alias, self.token)

    @classmethod
    def from_term(cls, t: tuple) -> "AliasSendTT":
        return cls(t[1], t[2], t[3])


# --- exits --------------------------------------------------------------------
# EXIT is the signal a broken link sends; EXIT2 is exit/2 sent explicitly.


@dataclass(frozen=True, slots=True)
class Exit(Control):
    OP: ClassVar[int] = 3
    from_pid: Pid
    to_pid: Pid
    reason: Any

    def term(self) -> tuple:
        return (3, self.from_pid, self.to_pid, self.reason)

    @classmethod
    def from_term(cls, t: tuple) -> "Exit":
        return cls(t[1], t[2], t[3])


@dataclass(frozen=True, slots=True)
class ExitTT(Control):
    OP: ClassVar[int] = 13
    from_pid: Pid
    to_pid: Pid
    token: Any
    reason: Any

    def term(self) -> tuple:
        return (13, self.from_pid, self.to_pid, self.token, self.reason)

    @classmethod
    def from_term(cls, t: tuple) -> "ExitTT":
        return cls(t[1], t[2], t[3], t[4])


@dataclass(frozen=True, slots=True)
class Exit2(Control):
    OP: ClassVar[int] = 8
    from_pid: Pid
    to_pid: Pid
    reason: Any

    def term(self) -> tuple:
        return (8, self.from_pid, self.to_pid, self.reason)

    @classmethod
    def from_term(cls, t: tuple) -> "Exit2":
        return cls(t[1], t[2], t[3])


@dataclass(frozen=True, slots=True)
class Exit2TT(Control):
    OP: ClassVar[int] = 18
    from_pid: Pid
    to_pid: Pid
    token: Any
    reason: Any

    def term(self) -> tuple:
        return (18, self.from_pid, self.to_pid, self.token, self.reason)

    @classmethod
    def from_term(cls, t: tuple) -> "Exit2TT":
        return cls(t[1], t[2], t[3], t[4])


@dataclass(frozen=True, slots=True)
class PayloadExit(Control):
    """EXIT with the reason as the frame's second term (EXIT_PAYLOAD peers)."""

    OP: ClassVar[int] = 24
    PAYLOAD: ClassVar[bool] = True
    from_pid: Pid
    to_pid: Pid

    def term(self) -> tuple:
        return (24, self.from_pid, self.to_pid)

    @classmethod
    def from_term(cls, t: tuple) -> "PayloadExit":
        return cls(t[1], t[2])


@dataclass(frozen=True, slots=True)
class PayloadExitTT(Control):
    OP: ClassVar[int] = 25
    PAYLOAD: ClassVar[bool] = True
    from_pid: Pid
    to_pid: Pid
    token: Any

    def term(self) -> tuple:
        return (25, self.from_pid, self.to_pid, self.token)

    @classmethod
    def from_term(cls, t: tuple) -> "PayloadExitTT":
        return cls(t[1], t[2], t[3])


@dataclass(frozen=True, slots=True)
class PayloadExit2(Control):
    OP: ClassVar[int] = 26
    PAYLOAD: ClassVar[bool] = True
    from_pid: Pid
    to_pid: Pid

    def term(self) -> tuple:
        return (26, self.from_pid, self.to_pid)

    @classmethod
    def from_term(cls, t: tuple) -> "PayloadExit2":
        return cls(t[1], t[2])


@dataclass(frozen=True, slots=True)
class PayloadExit2TT(Control):
    OP: ClassVar[int] = 27
    PAYLOAD: ClassVar[bool] = True
    from_pid: Pid
    to_pid: Pid
    token: Any

    def term(self) -> tuple:
        return (27, self.from_pid, self.to_pid, self.token)

    @classmethod
    def from_term(cls, t: tuple) -> "PayloadExit2TT":
        return cls(t[1], t[2], t[3])


# --- monitors -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MonitorP(Control):
    """``from_pid`` monitors ``to_proc`` (a pid, or a registered name on the receiver)."""

    OP: ClassVar[int] = 19
    from_pid: Pid
    to_proc: Pid | Atom
    ref: Reference

    def term(self) -> tuple:
        return (19, self.from_pid, self.to_proc, self.ref)

    @classmethod
    def from_term(cls, t: tuple) -> "MonitorP":
        return cls(t[1], t[2], t[3])


@dataclass(frozen=True, slots=True)
class DemonitorP(Control):
    OP: ClassVar[int] = 20
    from_pid: Pid
    to_proc: Pid | Atom
    ref: Reference

    def term(self) -> tuple:
        return (20, self.from_pid, self.to_proc, self.ref)

    @classmethod
    def from_term(cls, t: tuple) -> "DemonitorP":
        return cls(t[1], t[2], t[3])


@dataclass(frozen=True, slots=True)
class MonitorPExit(Control):
    OP: ClassVar[int] = 21
    from_proc: Pid | Atom
    to_pid: Pid
    ref: Reference
    reason: Any

    def term(self) -> tuple:
        return (21, self.from_proc, self.to_pid, self.ref, self.reason)

    @classmethod
    def from_term(cls, t: tuple) -> "MonitorPExit":
        return cls(t[1], t[2], t[3], t[4])


@dataclass(frozen=True, slots=True)
class PayloadMonitorPExit(Control):
    OP: ClassVar[int] = 28
    PAYLOAD: ClassVar[bool] = True
    from_proc: Pid | Atom
    to_pid: Pid
    ref: Reference

    def term(self) -> tuple:
        return (28, self.from_proc, self.to_pid, self.ref)

    @classmethod
    def from_term(cls, t: tuple) -> "PayloadMonitorPExit":
        return cls(t[1], t[2], t[3])


CONTROL_TYPES: dict[int, type[Control]] = {
    c.OP: c
    for c in (
        Link, Unlink, UnlinkId, UnlinkIdAck,
        Send, SendTT, SendSender, SendSenderTT, RegSend, RegSendTT, AliasSend, AliasSendTT,
        Exit, ExitTT, Exit2, Exit2TT, PayloadExit, PayloadExitTT, PayloadExit2, PayloadExit2TT,
        MonitorP, DemonitorP, MonitorPExit, PayloadMonitorPExit,
    )
}


def parse(term: Any) -> Control | None:
    """The typed control message for a decoded control tuple; None for ops we ignore."""
    if not isinstance(term, tuple) or not term or not isinstance(term[0], int):
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
