"""Each node's result in an install or rollback, and the only ways it may change.

Modelled on the status/action table at the top of OTP's release_handler.erl: the
states a node can be in, the changes that move it, and what each change leads to.
Every change goes through `NodeOutcome.apply`; a change the table does not list is a
bug in the caller and raises. The states' values are the `result` strings of the
JSON report (erldeploy.install/1).

    state         | change          | new state
    --------------+-----------------+---------------
    untouched     | installed       | installed        install_release done (verify follows)
    untouched     | failed          | failed           upload/unpack/check/install/verify failed
    installed     | failed          | failed           verify or make_permanent failed
    installed     | committed       | permanent        make_permanent done
    installed     | rolled_back     | rolled_back      taken back to its from-release
    installed     | rollback_failed | rollback_failed
    failed        | failed          | failed           a second error on a failed node (kept, added)
    failed        | rolled_back     | failed           back on its from-release, still a failure
    failed        | rollback_failed | rollback_failed
    already       |                 |                  already permanent at preflight: never changes
    permanent, rolled_back, rollback_failed: final
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any


class NodeState(str, Enum):
    UNTOUCHED = "untouched"
    ALREADY = "already"
    INSTALLED = "installed"
    PERMANENT = "permanent"
    FAILED = "failed"
    ROLLED_BACK = "rolled_back"
    ROLLBACK_FAILED = "rollback_failed"

    def __str__(self) -> str:       # prints (and renders) as the JSON string
        return self.value


class Change(Enum):
    INSTALLED = "installed"
    FAILED = "failed"
    COMMITTED = "committed"
    ROLLED_BACK = "rolled_back"
    ROLLBACK_FAILED = "rollback_failed"


S, C = NodeState, Change
TRANSITIONS: dict[tuple[NodeState, Change], NodeState] = {
    (S.UNTOUCHED, C.INSTALLED): S.INSTALLED,
    (S.UNTOUCHED, C.FAILED): S.FAILED,
    (S.INSTALLED, C.FAILED): S.FAILED,
    (S.INSTALLED, C.COMMITTED): S.PERMANENT,
    (S.INSTALLED, C.ROLLED_BACK): S.ROLLED_BACK,
    (S.INSTALLED, C.ROLLBACK_FAILED): S.ROLLBACK_FAILED,
    (S.FAILED, C.FAILED): S.FAILED,
    (S.FAILED, C.ROLLED_BACK): S.FAILED,
    (S.FAILED, C.ROLLBACK_FAILED): S.ROLLBACK_FAILED,
}
del S, C


class IllegalTransition(Exception):
    """A change the table does not allow: a bug in the caller, not a node's failure."""


def next_state(state: NodeState, change: Change) -> NodeState:
    try:
        return TRANSITIONS[(state, change)]
    except KeyError:
        raise IllegalTransition(f"a node in state {state.value} cannot take the change {change.value}") from None


def may_roll_back(state: NodeState) -> bool:
    """The states a rollback is tried from: those the table lets a rollback change."""
    return (state, Change.ROLLED_BACK) in TRANSITIONS


@dataclass
class NodeOutcome:
    node: str
    from_vsn: str | None
    to_vsn: str
    result: NodeState = NodeState.UNTOUCHED
    error: str | None = None
    current: str | None = None
    permanent: str | None = None
    crash_reports: list[str] = field(default_factory=list)
    steps: dict[str, float] = field(default_factory=dict)

    def apply(self, change: Change, error: str | None = None) -> NodeState:
        """Move through the table; an error is added to what the node reports."""
        self.result = next_state(self.result, change)
        if error:
            self.add_error(error)
        return self.result

    def add_error(self, error: str) -> None:
        self.error = f"{self.error}; {error}" if self.error else error

    def to_json(self) -> dict[str, Any]:
        return {"node": self.node, "from": self.from_vsn, "to": self.to_vsn, "result": self.result.value,
                "error": self.error, "current": self.current, "permanent": self.permanent,
                "crash_reports": self.crash_reports, "seconds": {k: round(v, 3) for k, v in self.steps.items()}}
