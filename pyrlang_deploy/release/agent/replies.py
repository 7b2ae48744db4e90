"""The agent's answers, decoded: pure functions from decoded Erlang terms to typed values.

No I/O here; tests/release/test_agent_replies.py feeds them literal terms. The shapes
are the protocol of agent/README.md ("Protocol in one screen").
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ...term.types import Atom, Pid
from ..terms import error_reason, is_tagged, text
from .phases import FINISHED

EVENT = Atom("erldeploy_event")
CHUNK = Atom("erldeploy_chunk")
CHUNK_ACK = Atom("erldeploy_chunk_ack")
CHUNK_ERROR = Atom("erldeploy_chunk_error")
UNDEFINED = Atom("undefined")


# ---------------------------------------------------------------- typed results

@dataclass(frozen=True)
class CrashReport:
    """One error-level event the agent captured during the upgrade window."""

    kind: str            # crash_report | supervisor_report | terminate | error
    who: str             # registered name or pid, as text
    reason: str          # the innermost reason, one line
    text: str            # the whole event, one line

    def __str__(self) -> str:
        return f"{self.kind} {self.who}: {self.reason}"


@dataclass(frozen=True)
class GuardEvent:
    """A live event from a node's guard: ``kind`` is the tag, ``data`` the rest, decoded."""

    node: str
    kind: str            # stage | crash | install_failed | verify_failed | rollback | lease_expired | committed | ...
    data: Any

    @property
    def crash(self) -> CrashReport | None:
        return crash(self.data) if self.kind == "crash" else None


@dataclass
class GuardResult:
    """What the guarded install on one node did.

    ``ok``: installed and verified; the node now waits for commit within the lease.
    Otherwise ``stage`` says where it failed (check, install, verify, guard) and the
    node is on ``rolled_back_to`` (after a verify failure) or untouched (check), or
    restarting into its permanent release (``node_restarting``: a failure after
    release_handler's point of no return, e.g. a crash in code_change).
    """

    node: str
    vsn: str
    ok: bool
    from_vsn: str | None = None
    stage: str | None = None
    reason: Any = None
    reason_text: str = ""
    root_cause: str = ""
    node_restarting: bool = False
    rolled_back_to: str | None = None
    timings_ms: dict[str, int] = field(default_factory=dict)
    crashes: list[CrashReport] = field(default_factory=list)
    errors: list[CrashReport] = field(default_factory=list)
    releases: list[tuple[str, str]] = field(default_factory=list)
    events: list[GuardEvent] = field(default_factory=list)

    def describe(self) -> str:
        if self.ok:
            return f"{self.node}: {self.from_vsn} -> {self.vsn} installed and verified, waiting for commit"
        why = self.root_cause or self.reason_text or text(self.reason)
        tail = ""
        if self.rolled_back_to:
            tail = f"; rolled back to {self.rolled_back_to}"
        elif self.node_restarting:
            tail = "; the node restarts into its permanent release"
        crashes = f"; crashes: {'; '.join(map(str, self.crashes))}" if self.crashes else ""
        return f"{self.node}: {self.stage} failed for {self.vsn}: {why}{tail}{crashes}"


@dataclass(frozen=True)
class AgentStatus:
    node: str
    loaded: bool                 # any erldeploy_* module loaded
    current: bool                # exactly the beams this controller ships
    guard: dict[str, Any] | None
    uploads: list[dict[str, Any]]
    last_outcome: dict[str, Any] | None

    def describe(self) -> str:
        parts = ["agent loaded" + ("" if self.current else " (another build)") if self.loaded else "agent not loaded"]
        if self.guard:
            g = self.guard
            parts.append(f"guard {g.get('phase')} {g.get('from')} -> {g.get('vsn')}"
                         + (f", lease {g['lease_left_ms'] / 1000:.1f}s left" if g.get("lease_left_ms") is not None
                            else ""))
        for u in self.uploads:
            parts.append(f"upload {u.get('name')} {u.get('bytes')}/{u.get('size')} bytes")
        if self.last_outcome:
            o = self.last_outcome
            parts.append(f"last guarded install: {o.get('result')} {o.get('from')} -> {o.get('vsn')} at {o.get('at')}")
        return "; ".join(parts)


# ---------------------------------------------------------------- generic shapes

def plain(v: Any) -> Any:
    """Decoded terms to JSON-friendly values: binaries to str, atoms/keys to str."""
    if isinstance(v, dict):
        return {str(k): plain(x) for k, x in v.items()}
    if isinstance(v, (bytes, bytearray)):
        return bytes(v).decode("utf-8", "replace")
    if isinstance(v, (list, tuple)):
        return [plain(x) for x in v]
    if isinstance(v, (Pid, str)):
        return str(v)
    return v


def is_undef(reason: Any, mod: str) -> bool:
    """{'EXIT', {undef, [{Mod, ...} | _]}} (maybe under badrpc) for a module that is not loaded."""
    r = reason
    while isinstance(r, tuple) and r and r[0] in ("EXIT", "badrpc"):
        r = r[1]
    return (isinstance(r, tuple) and len(r) == 2 and r[0] == "undef" and isinstance(r[1], list) and bool(r[1])
            and isinstance(r[1][0], tuple) and str(r[1][0][0]) == mod)


def failure(r: Any) -> str | None:
    """None for `ok`, else the reason as text: renew, commit and unload answers."""
    return None if r == "ok" else text(error_reason(r))


# ---------------------------------------------------------------- loading, status

def loaded(r: Any) -> str | None:
    """code:load_binary/3: None when {module, M}, else the reason as text."""
    return None if is_tagged(r, "module") else text(error_reason(r))


def md5_hex(r: Any) -> str | None:
    return r.hex() if isinstance(r, bytes) else None


def guard_busy(status: Any) -> tuple[str, str] | None:
    """erldeploy_guard:status(): (vsn, phase) while a guard holds an install, else None."""
    if isinstance(status, dict) and str(status.get("phase")) not in FINISHED:
        return text(status.get("vsn")), text(status.get("phase"))
    return None


def agent_status(node: str, loaded_: bool, current: bool, st: Any, outcome: Any) -> AgentStatus:
    """erldeploy_agent:status() (None when the agent is not loaded) and the persistent outcome."""
    guard, uploads = None, []
    if isinstance(st, dict):
        guard = plain(st.get("guard")) if isinstance(st.get("guard"), dict) else None
        uploads = [plain(u) for u in st.get("uploads") or []]
    return AgentStatus(node, loaded_, loaded_ and current, guard, uploads,
                       plain(outcome) if isinstance(outcome, dict) else None)


def digest_algo(info: Any) -> str:
    """erldeploy_agent:info(): sha256 where the node has crypto, else md5 (a BIF)."""
    algos = [str(a) for a in (info.get("algos") or [])] if isinstance(info, dict) else []
    return "sha256" if "sha256" in algos else "md5"


# ---------------------------------------------------------------- upload

@dataclass(frozen=True)
class Opened:
    kind: str                    # ok | already_present | error
    pid: Pid | None = None       # the upload process (ok)
    path: str = ""               # where the file already is (already_present)
    reason: str = ""             # error


def upload_opened(r: Any) -> Opened:
    if is_tagged(r, "already_present", 2):
        return Opened("already_present", path=text(r[1]))
    if is_tagged(r, "ok", 2) and isinstance(r[1], Pid):
        return Opened("ok", pid=r[1])
    return Opened("error", reason=text(error_reason(r)))


def chunk_reply_of(upid: Pid):
    """A receive filter for this upload's acks and errors."""
    def match(m: Any) -> bool:
        return isinstance(m, tuple) and len(m) >= 3 and m[0] in (CHUNK_ACK, CHUNK_ERROR) and m[1] == upid
    return match


def chunk_reply(m: Any) -> tuple[int, str | None]:
    """{erldeploy_chunk_ack, Pid, Seq} -> (Seq, None); {erldeploy_chunk_error, Pid, Seq, R} -> (Seq, R text)."""
    if m[0] == CHUNK_ERROR:
        return m[2], text(m[3]) if len(m) > 3 else "?"
    return m[2], None


@dataclass(frozen=True)
class Finished:
    path: str = ""               # the final path (ok)
    mismatch: tuple[str, str] | None = None   # (expected hex, got hex)
    reason: str = ""

    @property
    def ok(self) -> bool:
        return bool(self.path)


def upload_finished(r: Any) -> Finished:
    if is_tagged(r, "ok", 2):
        return Finished(path=text(r[1]))
    reason = error_reason(r)
    if is_tagged(reason, "checksum_mismatch", 3):
        return Finished(mismatch=(text(reason[1]), text(reason[2])))
    return Finished(reason=text(reason))


# ---------------------------------------------------------------- guard

def event(msg: Any) -> GuardEvent | None:
    """{erldeploy_event, Node, Event} -> GuardEvent; anything else None.
    Event {Tag, X} gives data X, {Tag, X, Y...} gives (X, Y...), a bare atom None."""
    if not (isinstance(msg, tuple) and len(msg) == 3 and msg[0] == EVENT):
        return None
    ev = msg[2]
    if isinstance(ev, tuple) and ev:
        kind, data = str(ev[0]), ev[1] if len(ev) == 2 else tuple(ev[1:])
    else:
        kind, data = str(ev), None
    return GuardEvent(str(msg[1]), kind, data)


def crash(m: Any) -> CrashReport | None:
    if not isinstance(m, dict):
        return None
    return CrashReport(str(m.get("kind", "error")), text(m.get("who")), text(m.get("reason")), text(m.get("text")))


def guard_result(node: str, vsn: str, reply: Any) -> GuardResult | None:
    """erldeploy_agent:guard_install/2's reply: {ok, Report} | {error, Stage, Reason, Report}.
    None for any other shape. Events are the watch's business (guard.py adds them)."""
    if is_tagged(reply, "ok", 2):
        return _with_report(GuardResult(node, vsn, True), reply[1] if isinstance(reply[1], dict) else {})
    if not is_tagged(reply, "error", 4):
        return None
    _, stage, reason, rep = reply
    rep = rep if isinstance(rep, dict) else {}
    res = _with_report(GuardResult(node, vsn, False, stage=str(stage), reason=reason, reason_text=text(reason)), rep)
    err = rep.get("install_error")
    if isinstance(err, dict):
        res.root_cause = text(err.get("root_cause"))
        res.node_restarting = bool(err.get("node_restarting"))
    rb = rep.get("rollback")
    if is_tagged(rb, "ok", 3):
        res.rolled_back_to = text(rb[2])
    return res


def install_failed(node: str, vsn: str, data: Any) -> GuardResult:
    """The guard's {install_failed, #{reason, root_cause, node_restarting}} event, sent before
    a restart took the rpc reply with it."""
    info = plain(data) if isinstance(data, dict) else {}
    return GuardResult(node, vsn, False, stage="install", reason=data, reason_text=str(info.get("reason", "")),
                       root_cause=str(info.get("root_cause", "")), node_restarting=bool(info.get("node_restarting")))


def _with_report(res: GuardResult, rep: dict) -> GuardResult:
    res.from_vsn = text(rep.get("from")) if rep.get("from") is not None else None
    res.timings_ms = {str(k): int(v) for k, v in (rep.get("timings") or {}).items()}
    res.crashes = [c for c in map(crash, rep.get("crashes") or []) if c]
    res.errors = [c for c in map(crash, rep.get("errors") or []) if c]
    res.releases = [(text(v), str(s)) for v, s in rep.get("releases") or []]
    return res


def aborted(r: Any) -> str | None:
    """erldeploy_agent:abort/1: {ok, From, BackTo} -> BackTo; None otherwise."""
    return text(r[2]) if is_tagged(r, "ok", 3) else None
