"""What an install or rollback reports: progress events and the report (the plan is plan.py's,
each node's outcome outcome.py's)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .hooks import HookResult
    from .outcome import NodeOutcome
    from .plan import Plan

SCHEMA = "erldeploy.install/1"


@dataclass
class Event:
    """Progress, for people (the CLI draws it) and for logs."""

    node: str
    step: str        # upload | unpack | check | install | verify | permanent | rollback | wait | relup | before | drain | after
    state: str       # start | ok | fail | info | progress
    detail: str = ""
    seconds: float = 0.0
    done: int = 0
    total: int = 0


@dataclass
class InstallReport:
    action: str                 # install | rollback
    to_vsn: str
    ok: bool
    message: str
    plan: Plan | None = None
    noop: bool = False
    dry_run: bool = False
    nodes: list[NodeOutcome] = field(default_factory=list)
    hooks: list[HookResult] = field(default_factory=list)     # hooks.py, in the order they ran

    @property
    def exit_code(self) -> int:
        return 0 if self.ok else 1

    def to_json(self) -> dict[str, Any]:
        return {"schema": SCHEMA, "action": self.action, "ok": self.ok, "vsn": self.to_vsn,
                "message": self.message, "noop": self.noop, "dry_run": self.dry_run,
                "plan": self.plan.to_json() if self.plan else None,
                "warnings": list(self.plan.warnings) if self.plan else [],     # doctor's, per node
                "nodes": [n.to_json() for n in self.nodes], "hooks": [h.to_json() for h in self.hooks]}
