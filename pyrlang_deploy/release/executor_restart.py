"""Restart mode (`install --restart`): each node is restarted into the new release by
release_handler itself, for releases that cannot (or should not) be hot-upgraded.

How release_handler restarts a node (sasl's release_handler.erl, do_install_release and
prepare_restart_new_emulator; DESIGN.md "Restart upgrades"): when the relup's script holds
`restart_emulator`, install_release writes releases/new_start_erl.data ("ERTS VSN"), marks
VSN tmp_current in RELEASES, sets heart's command to `StartPrg ++ " " ++ DataFile` (StartPrg
is sasl's `start_prg`, default ROOT/bin/start), replies {ok, From, Descr} and calls
init:reboot(). The emulator halts, heart runs that command, and the node boots VSN: then
VSN is current (not permanent) and make_permanent finishes the job. A restart that boots
anything else leaves VSN merely unpacked. So the node needs heart running and a start
program that boots the data file it is given (`preflight` checks both).

Per node (the Installer's batches, after upload/unpack/check): the relup entry for this
transition is written as `[restart_emulator]` both ways (the only instruction needed:
nothing is hot-loaded) unless it restarts the node both ways already, the drain call runs, install_release is called, and the node is
waited for until a new emulator (another OS pid) answers with release_handler running;
it must then run VSN. Rolling back is the same restart aimed at the permanent release
through the relup's down entry ("rollbacks are just upgrades").

Which relup file: release_handler (do_get_rh_script) reads releases/TO/relup for an entry up
from the running release first, then releases/FROM/relup for one down to TO. The restart is
written where it will be read: TO's file for an install, FROM's down entry for a rollback
(`rollback --restart` after an `install --restart` finds it written both ways already), so an
old release's directory never gains an invented upgrade entry.

An emulator-restart relup (systools puts restart_new_emulator first when ERTS or kernel/
stdlib/sasl change, and restart_emulator last in the way down) is used as it is:
install_release then answers {continue_after_restart, ...}, writes a temporary release
__new_emulator__FROM (NEW's emulator and kernel/stdlib/sasl, FROM's other apps) as
tmp_current and reboots into it; that boot script's last call,
release_handler:new_emulator_upgrade, runs the rest of the relup, and NEW is current once
`init` reports started. If that rest fails, release_handler restarts the node, and heart's
default command boots the permanent release. While waiting, the boot scripts of the
emulators that answer are noted, so the error can say which of the two went wrong.

A restart relup is written here, not made by systools:make_relup: make_relup derives the
instructions from the apps' .appup files, which such releases do not have, and a
restart relup needs none of them.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import ConnectError, NodeDown, PreflightError, ReleaseError, RpcError
from ..term.types import Atom
from .executor_plain import PlainExecutor
from .plan import REFUSED
from .relup import Relup, parse_relup
from .terms import error_reason, is_tagged, show, text

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from .hooks import HookCall, HookRunner
    from .install import Emit
    from .nodeops import NodeOps
    from .outcome import NodeOutcome
    from .plan import Plan, Relups
    from .steps import NodeSteps

RESTART = [Atom("restart_emulator")]

HOW_TO = ("start nodes so that heart restarts them with the data file: OTP's embedded bin/start "
          "(run_erl + start_erl, `-heart` and HEART_COMMAND=ROOT/bin/start); relx with `-heart` in "
          "vm.args and sasl start_prg set to a script that runs bin/NAME-$(cut -d' ' -f2 \"$1\") daemon; "
          "under systemd, heart with a start_prg that boots the data file it is given "
          "(systemd's Restart= alone boots the permanent release)")


# --- pure: the relup, the plan's note, the start program ---------------------------------

def restart_relup(existing: Any, vsn: str, from_vsn: str) -> tuple:
    """VSN's relup term with `[restart_emulator]` up from and down to from_vsn; the other
    entries of an existing relup are kept as they are."""
    ups: list = []
    downs: list = []
    if isinstance(existing, tuple) and len(existing) == 3:
        ups = [e for e in existing[1] if text(e[0]) != from_vsn]
        downs = [e for e in existing[2] if text(e[0]) != from_vsn]
    descr = f"erldeploy restart upgrade {from_vsn} <-> {vsn}"
    return (vsn, [(from_vsn, descr, RESTART)] + ups, [(from_vsn, descr, RESTART)] + downs)


def relup_site(to: str, cur: str, to_relup: Relup | None, cur_relup: Relup | None,
               downgrade: bool) -> tuple[str, str]:
    """(the release whose relup file release_handler will read to go cur -> to, the other
    version of its entry), mirroring do_get_rh_script: TO's entry up from cur first, then
    cur's entry down to TO; with neither, TO's file for an upgrade, cur's for a downgrade."""
    if to_relup is not None and to_relup.vsn == to and cur in to_relup.up_from:
        return to, cur
    if cur_relup is not None and cur_relup.vsn == cur and to in cur_relup.down_to:
        return cur, to
    return (cur, to) if downgrade else (to, cur)


def new_emulator(instrs: list) -> bool:
    """The script starts with restart_new_emulator (systools: ERTS or kernel/stdlib/sasl changed)."""
    return bool(instrs) and instrs[0] == "restart_new_emulator"


def restarts(instrs: list) -> bool:
    """An entry's script restarts the node: restart_emulator anywhere (systools puts it
    last in a core-app downgrade), or restart_new_emulator first."""
    return any(i == "restart_emulator" for i in instrs) or new_emulator(instrs)


def restarts_both_ways(relup: Relup, from_vsn: str) -> bool:
    """The relup restarts the emulator up from from_vsn and down to it: used as it is."""
    return restarts(relup.up_from.get(from_vsn, [])) and restarts(relup.down_to.get(from_vsn, []))


def relup_note(relups: Relups, vsn: str, from_vsn: str | None, direction: str = "up") -> str:
    """What restart mode does with the relup, for the plan's notes."""
    how = ("each node in turn: drain (if given), install_release, heart restarts it into "
           f"{vsn} by sasl's start_prg with releases/new_start_erl.data, wait until it is back on {vsn}, verify")
    to, cur = relups.target, relups.running
    site, other = relup_site(vsn, from_vsn or "", to, cur, downgrade=direction == "down")
    own = to if site == vsn else cur
    entry = f"releases/{site}/relup's entry for {other}"
    if own is not None and own.vsn == site and from_vsn and restarts_both_ways(own, other):
        if site == vsn and new_emulator(own.up_from.get(other, [])):
            how = (f"restart_new_emulator: each node in turn: drain (if given), install_release answers "
                   f"continue_after_restart and heart reboots the node into {vsn}'s emulator and kernel/stdlib/sasl "
                   f"(release_handler's temporary release __new_emulator__{from_vsn}), whose boot runs the rest "
                   f"of the relup; wait until it is back on {vsn}, verify")
        return f"restart mode: {entry} restarts the emulator already ({how})"
    if own is None or own.vsn != site:
        have = "the tarball has no relup; " if site == vsn and to is None and direction == "up" else ""
        return f"restart mode: {have}{entry} is written as [restart_emulator] both ways ({how})"
    return f"restart mode: {entry} is replaced by [restart_emulator] on the nodes ({how})"


def start_prg_problem(content: bytes | None, path: str) -> str | None:
    """Why a start program cannot boot the data file it is given, or None when it may.

    release_handler runs `StartPrg DataFile`: a shell script that never reads its first
    argument boots whatever it always boots (its start_erl.data: the permanent release).
    A binary cannot be read this way and is trusted. Passing "$@" on (to erlexec, say) is not
    enough: the data file must be read as the first argument, `${1:-.../start_erl.data}` as
    OTP's bin/start does."""
    if content is None:
        return f"its start program {path} does not exist"
    if not content.startswith(b"#!"):
        return None
    body = b"\n".join(line.split(b"#", 1)[0] if not line.startswith(b"#!") else b""
                      for line in content.splitlines())
    if b"$1" in body or b"${1" in body:
        return None
    return (f"its start program {path} never reads its first argument (the data file naming the "
            f"release to boot), so a restart would boot the permanent release again")


# --- preflight (I/O) ---------------------------------------------------------------------

@dataclass(frozen=True)
class RestartFacts:
    node: str
    heart: bool
    start_prg: str
    problem: str | None         # why the node cannot be restarted into VSN, or None


async def restart_facts(ops: NodeOps, node: str, root_dir: str) -> RestartFacts:
    heart = await ops.rpc(node, "erlang", "whereis", [Atom("heart")]) != "undefined"
    env = await ops.rpc(node, "application", "get_env", [Atom("sasl"), Atom("start_prg")])
    prg = text(env[1]) if is_tagged(env, "ok", 2) else f"{root_dir}/bin/start"
    info = await ops.rpc(node, "file", "read_file_info", [prg])
    problems = []
    if not heart:
        problems.append("heart is not running (started without -heart), so nothing restarts it")
    if is_tagged(info, "ok", 2):
        # #file_info{size, type, access, atime, mtime, ctime, mode, ...}: element 8 is mode
        size, ftype, mode = info[1][1], info[1][2], info[1][7]
        if ftype != "regular" or not (mode & 0o111):
            problems.append(f"its start program {prg} is not an executable file")
        else:
            # a script is small; anything big is a binary, which cannot be read this way
            r = await ops.rpc(node, "file", "read_file", [prg]) if size <= 1 << 20 else None
            content = r[1] if is_tagged(r, "ok", 2) else b""
            why = start_prg_problem(content, prg)
            if why:
                problems.append(why)
    else:
        problems.append(start_prg_problem(None, prg) or "")
    return RestartFacts(node, heart, prg, "; ".join(problems) or None)


async def preflight(ops: NodeOps, plan: Plan) -> dict[str, RestartFacts]:
    """Refuse (PreflightError, nothing changed) unless every node to restart runs heart and
    has a start program that boots the data file it is given."""
    todo = [n for b in plan.batches for n in b]
    res = await ops.each(lambda n: restart_facts(ops, n, plan.target(n).root_dir), todo)
    problems = []
    facts: dict[str, RestartFacts] = {}
    for node in todo:
        r = res[node]
        if not r.ok:
            problems.append(f"{node}: cannot read its heart and start program: {r.error}")
        elif r.value.problem:
            problems.append(f"{node}: {r.value.problem}")
        else:
            facts[node] = r.value
    if problems:
        raise PreflightError(f"{REFUSED}restart mode needs heart: " + "; ".join(problems) + f". To fix, {HOW_TO}")
    return facts


# --- the executor ----------------------------------------------------------------------

class RestartExecutor(PlainExecutor):
    """Plain RPC like PlainExecutor (upload, commit, no guards to decide), but a node moves
    between releases by rebooting through heart instead of a hot install."""

    def __init__(self, ops: NodeOps, steps: NodeSteps, emit: Emit, plan: Plan,
                 hooks: HookRunner | None = None, drain: HookCall | None = None,
                 relock: Callable[[str], Awaitable[None]] | None = None):
        super().__init__(ops, steps, emit, plan.to_vsn)
        self.plan = plan
        self.hooks = hooks
        self.drain = drain
        # the run's deploy lock on a node dies with its old emulator: taken again once it is back
        self.relock = relock
        self.start_prg: dict[str, str] = {}

    async def install(self, node: str, outcome: NodeOutcome, expected_apps: dict[str, str]) -> None:
        t = self.plan.target(node)
        if not outcome.from_vsn:
            raise ReleaseError(f"{node}: no running release to restart from", node=node)
        await self.write_relup(node, t.releases_dir, outcome.from_vsn)
        await self.steps.check_install(node, self.vsn)
        if self.drain is not None and self.hooks is not None:
            await self.hooks.run_or_raise(self.drain, node)
        await self.restart_into(node, self.vsn)

    async def abort(self, node: str, back_to: str) -> None:
        await self.restart_into(node, back_to)

    async def write_relup(self, node: str, releases_dir: str, from_vsn: str) -> None:
        """Make the relup entry release_handler will use for from_vsn -> VSN restart the node
        (kept when it does already: the release's own, or one written by an earlier run)."""
        to_path, cur_path = f"{releases_dir}/{self.vsn}/relup", f"{releases_dir}/{from_vsn}/relup"
        read = {p: await self.steps.read_term_file(node, p) for p in (to_path, cur_path)}
        parsed = {p: _parsed(t) for p, t in read.items()}
        site, other = relup_site(self.vsn, from_vsn, parsed[to_path], parsed[cur_path],
                                 downgrade=self.plan.direction == "down")
        path = to_path if site == self.vsn else cur_path
        own = parsed[path]
        if own is not None and own.vsn == site and restarts_both_ways(own, other):
            return
        term = restart_relup(read[path] if own is not None else None, site, other)
        # formatted by the node itself, so file:consult reads back exactly this term
        chars = await self.ops.rpc(node, "io_lib", "format", ["%% coding: utf-8\n~tp.~n", [term]])
        data = _flatten(chars).encode("utf-8")
        r = await self.ops.rpc(node, "file", "write_file", [path, data])
        if r != "ok":
            raise ReleaseError(f"{node}: writing {path} failed: {show(error_reason(r))}", node=node)
        self.emit(node, "relup", "info", f"{path}: [restart_emulator] up from and down to {other}")

    async def restart_into(self, node: str, to: str) -> None:
        """install_release(to) through a relup that restarts the node, then wait for the new emulator."""
        before = text(await self.ops.rpc(node, "os", "getpid", []))
        cur_vsn, _ = await self.steps.current_and_permanent(node)
        ans = await self.steps.install(node, to)
        if ans.kind == "error":
            if not await self.steps.restarting_after_error(node):
                raise ReleaseError(f"{node}: install_release({to}) returned {{error, {ans.detail}}}; "
                                   f"the node was not restarted", node=node)
        hybrid = f"__new_emulator__{cur_vsn}" if ans.kind == "continue_after_restart" else None
        how = (f"rebooting through heart into {to}'s emulator (release_handler's temporary release {hybrid}), "
               f"whose boot installs {to}" if hybrid else f"restarting through heart into {to}")
        self.emit(node, "wait", "info", f"{how}; waiting for it to come back")
        seen: set[str] = set()
        watch = asyncio.ensure_future(self._watch_boots(node, before, seen)) if hybrid else None
        try:
            await self.steps.wait_back(node, old_pid=before)
        finally:
            if watch is not None:
                watch.cancel()
        if self.relock is not None:
            await self.relock(node)
        cur, perm = await self.steps.current_and_permanent(node)
        if cur == to:
            return
        # release_handler turns the tmp_current release back into unpacked on such a boot
        left = f"{to} is left unpacked there"
        if hybrid in seen:
            raise ReleaseError(f"{node}: the new emulator booted ({hybrid}) but the rest of the relup failed "
                               f"there (release_handler:new_emulator_upgrade; its result is in the node's log), "
                               f"so heart booted the permanent release: it runs {cur} (permanent {perm}), "
                               f"not {to}; {left}", node=node)
        prg = await self._start_prg(node)
        also = (" or the rest of the relup failed on the new emulator (release_handler:new_emulator_upgrade, "
                "logged on the node)" if hybrid else "")
        raise ReleaseError(f"{node}: came back running {cur} (permanent {perm}), not {to}: its start "
                           f"program {prg} did not boot releases/new_start_erl.data{also} ({left}: once "
                           f"fixed, run it again naming {to})", node=node)

    async def _watch_boots(self, node: str, old_pid: str, seen: set[str]) -> None:
        """Note the boot script of each new emulator that answers while we wait: a hybrid boot
        that fails in new_emulator_upgrade never reaches `started`, yet it answers meanwhile."""
        while True:
            try:
                pid = text(await self.ops.rpc(node, "os", "getpid", [], timeout=2.0))
                if pid != old_pid:
                    sid = await self.ops.rpc(node, "init", "script_id", [], timeout=2.0)
                    seen.add(text(sid[1]))
            except (ConnectError, NodeDown, RpcError, TypeError, IndexError):
                pass
            await asyncio.sleep(0.2)

    async def _start_prg(self, node: str) -> str:
        if node not in self.start_prg:
            try:
                f = await restart_facts(self.ops, node, self.plan.target(node).root_dir)
                self.start_prg[node] = f.start_prg
            except (ConnectError, NodeDown, RpcError):
                return "(unknown)"
        return self.start_prg[node]


def _parsed(term: Any) -> Relup | None:
    """A relup file's term, or None when there is none or it is not a relup (then replaced)."""
    if term is None:
        return None
    try:
        return parse_relup(term)
    except (TypeError, ValueError, IndexError):
        return None


def _flatten(chars: Any) -> str:
    """io_lib:format's deep char list (decoded as str / nested lists / ints) -> str."""
    if isinstance(chars, str):
        return chars
    if isinstance(chars, int):
        return chr(chars)
    if isinstance(chars, (bytes, bytearray)):
        return bytes(chars).decode("utf-8")
    return "".join(_flatten(c) for c in chars)
