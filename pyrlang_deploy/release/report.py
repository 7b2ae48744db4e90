"""What an install or rollback reports: progress events, the plan, each node's outcome."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

SCHEMA = "erldeploy.install/1"


@dataclass
class Event:
    """Progress, for people (the CLI draws it) and for logs."""

    node: str
    step: str        # upload | unpack | check | install | verify | permanent | rollback | wait
    state: str       # start | ok | fail | info | progress
    detail: str = ""
    seconds: float = 0.0
    done: int = 0
    total: int = 0


@dataclass
class NodeOutcome:
    node: str
    from_vsn: str | None
    to_vsn: str
    result: str = "untouched"  # untouched | already | installed | permanent | failed | rolled_back | rollback_failed
    error: str | None = None
    current: str | None = None
    permanent: str | None = None
    crash_reports: list[str] = field(default_factory=list)
    steps: dict[str, float] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"node": self.node, "from": self.from_vsn, "to": self.to_vsn, "result": self.result,
                "error": self.error, "current": self.current, "permanent": self.permanent,
                "crash_reports": self.crash_reports, "seconds": {k: round(v, 3) for k, v in self.steps.items()}}


@dataclass
class Plan:
    release: str
    from_vsn: str | None
    to_vsn: str
    direction: str                      # up | down
    batches: list[list[str]]            # install order
    already_permanent: list[str]
    installed_not_permanent: list[str]
    need_upload: list[str]
    need_unpack: list[str]
    tarball: str | None
    agent: bool
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in (
            "release", "from_vsn", "to_vsn", "direction", "batches", "already_permanent",
            "installed_not_permanent", "need_upload", "need_unpack", "tarball", "agent", "notes")}


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

    @property
    def exit_code(self) -> int:
        return 0 if self.ok else 1

    def to_json(self) -> dict[str, Any]:
        return {"schema": SCHEMA, "action": self.action, "ok": self.ok, "vsn": self.to_vsn,
                "message": self.message, "noop": self.noop, "dry_run": self.dry_run,
                "plan": self.plan.to_json() if self.plan else None,
                "nodes": [n.to_json() for n in self.nodes]}
