"""The plan of an install or rollback, decided from facts alone.

    plan(statuses, tarball, relups, options) -> Plan

Pure: no RPC, no clock, no file access. Everything it needs was gathered before
(`preflight.gather`: each node's status, the tarball read locally, the relups read
on a node); everything the run does comes from the frozen Plan it returns. A refusal
is a PreflightError raised here, before any node changes. Unit-tested without nodes
(tests/release/test_plan.py), the way h11 tests its state table.

Order of the checks (and so which refusal a user sees first): the nodes' own state
(reachable, release_handler, RELEASES), one from-release, the tarball, the staged
tarball where no tarball was given, then the relup (up entry and down path).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..errors import PreflightError
from .layouts import kept_old

if TYPE_CHECKING:
    from .layouts import Layout
    from .relup import Relup
    from .status import NodeStatus
    from .tarball import TarballInfo

# strategy name -> how it orders the nodes (see batches()); the CLI offers these names
STRATEGIES = ("canary", "rolling", "all")
REFUSED = "preflight refused, no node was changed: "


@dataclass(frozen=True)
class PlanOptions:
    vsn: str
    strategy: str = "canary"
    batch: int = 1
    agent: bool = True
    dry_run: bool = False
    replace_unpacked: bool = False      # remove a stale unpacked VSN and unpack the tarball's
    restart: bool = False               # install by restarting each node (executor_restart.py)
    max_parallel: int = 0               # the largest wave (0: no cap)


@dataclass(frozen=True)
class NodeFacts:
    """What preflight read on one node beyond its status."""

    writable: bool | None = None        # a new file can be made in the releases dir (None: not probed)
    free_bytes: int | None = None       # free space in the releases dir's file system
    unpacked_relup: Relup | None = None   # the target's relup as unpacked there (stale-release check)
    lib_dirs: frozenset[str] | None = None  # names under ROOT/lib, read when the tarball omits libs


@dataclass(frozen=True)
class Relups:
    """The relups preflight read: the target release's, and (when the target's has no
    entry for the running version) the running release's, for a downgrade."""

    target: Relup | None = None
    running: Relup | None = None


@dataclass(frozen=True)
class NodeTarget:
    """What the run needs to know of one node it will change."""

    node: str
    current: str | None
    permanent: str | None
    root_dir: str = ""
    releases_dir: str = ""
    cwd: str = ""
    cwd_ok: bool = True
    adoption: str | None = None          # create | restart (status.NodeStatus.adoption)
    rel_file: str | None = None          # the .rel create_RELEASES reads


@dataclass(frozen=True)
class Plan:
    release: str
    from_vsn: str | None
    to_vsn: str
    direction: str                                  # up | down
    batches: tuple[tuple[str, ...], ...]            # install order
    already_permanent: tuple[str, ...]
    installed_not_permanent: tuple[str, ...]
    need_upload: tuple[str, ...]
    need_unpack: tuple[str, ...]
    tarball: str | None
    agent: bool                                     # the executor: the on-node agent, else plain RPC
    notes: tuple[str, ...] = ()
    # not part of the JSON report: what the run needs
    nodes: tuple[NodeTarget, ...] = field(default=(), repr=False)
    layout: Layout | None = None                  # the unpack name, where the tarball goes (layouts.py)
    adopt: tuple[str, ...] = ()                     # nodes adopted before anything else (mix releases)
    replace_unpacked: tuple[str, ...] = ()          # nodes whose stale unpacked VSN is removed first
    tar: TarballInfo | None = field(default=None, repr=False, compare=False)
    expected_apps: tuple[tuple[str, str], ...] = ()  # app -> vsn of the target .rel, when known here
    restart: bool = False                           # restart mode: executor_restart, no relup needed
    warnings: tuple[str, ...] = ()                  # doctor's, "NODE: warning": shown, never a refusal

    @property
    def noop(self) -> bool:
        return not self.batches and not self.installed_not_permanent

    @property
    def to_change(self) -> tuple[str, ...]:
        """Every node make_permanent will be called on, in order."""
        return self.installed_not_permanent + tuple(n for b in self.batches for n in b)

    @property
    def unpacked_already(self) -> tuple[str, ...]:
        """Nodes to change where the target is unpacked: check_install_release runs there in preflight."""
        return tuple(n for b in self.batches for n in b if n not in self.need_unpack)

    def target(self, node: str) -> NodeTarget:
        return next(t for t in self.nodes if t.node == node)

    def to_json(self) -> dict[str, Any]:
        return {"release": self.release, "from_vsn": self.from_vsn, "to_vsn": self.to_vsn,
                "direction": self.direction, "batches": [list(b) for b in self.batches],
                "already_permanent": list(self.already_permanent),
                "installed_not_permanent": list(self.installed_not_permanent),
                "need_upload": list(self.need_upload), "need_unpack": list(self.need_unpack),
                "tarball": self.tarball, "agent": self.agent, "notes": list(self.notes),
                "layout": self.layout.tool if self.layout else None, "adopt": list(self.adopt),
                "replace_unpacked": list(self.replace_unpacked), "restart": self.restart,
                "warnings": list(self.warnings)}

    @property
    def unpack_name(self) -> str:
        return self.layout.unpack_name if self.layout else ""


def check_strategy(strategy: str) -> None:
    if strategy not in STRATEGIES:
        from ..errors import UsageError
        raise UsageError(f"unknown strategy {strategy!r} ({', '.join(STRATEGIES[:-1])} or {STRATEGIES[-1]})")


def batches(nodes: Sequence[str], strategy: str, batch: int, max_parallel: int = 0
            ) -> tuple[tuple[str, ...], ...]:
    """canary: one node, then the rest in growing waves (batch, 2*batch, 4*batch, ...);
    rolling: waves of batch; all: one wave. max_parallel (0: none) caps every wave.
    Each wave is verified before the next starts (Installer.install_batches)."""
    check_strategy(strategy)
    nodes = tuple(nodes)
    if not nodes:
        return ()
    batch = max(1, batch)
    cap = max_parallel if max_parallel > 0 else len(nodes)
    if strategy == "all":
        return tuple(nodes[i:i + cap] for i in range(0, len(nodes), cap))
    if strategy == "canary":
        out, i, size = [nodes[:1]], 1, min(batch, cap)
        while i < len(nodes):
            out.append(nodes[i:i + size])
            i += size
            size = min(size * 2, cap)
        return tuple(out)
    size = min(batch, cap)
    return tuple(nodes[i:i + size] for i in range(0, len(nodes), size))


@dataclass(frozen=True)
class Survey:
    """Where every node stands against the target version (the first half of plan())."""

    done: tuple[str, ...]           # target current and permanent
    installed: tuple[str, ...]      # target current, not permanent (an earlier run got this far)
    todo: tuple[str, ...]           # target not running
    from_vsn: str | None
    release: str                    # the release name the nodes run ("?" when unknown)
    need_rel: tuple[str, ...]       # nodes where the target is not unpacked

    @property
    def probe(self) -> str | None:
        """The node relups are read on."""
        return self.todo[0] if self.todo else None


def survey(statuses: Sequence[NodeStatus], vsn: str) -> Survey:
    """Refuse nodes that cannot be upgraded and a cluster on several releases."""
    problems: list[str] = []
    for n in statuses:
        if not n.reachable:
            problems.append(f"{n.node}: unreachable ({n.error})")
        elif not n.release_handler:
            problems.append(f"{n.node}: release_handler is not running (is sasl started?)")
        elif n.adoption == "create" and not n.rel_file:
            problems.append(f"{n.node}: no RELEASES file in {n.releases_dir} and no releases/"
                            f"{n.current}/*.rel to adopt it from: release_handler can not hot-upgrade it")
    if problems:
        raise PreflightError(REFUSED + "; ".join(problems))
    done = tuple(n.node for n in statuses if n.permanent == vsn and n.current == vsn)
    installed = tuple(n.node for n in statuses if n.current == vsn and n.permanent != vsn)
    todo = tuple(n.node for n in statuses if n.current != vsn)
    by = {n.node: n for n in statuses}
    # every node must come from the same release: the one permanent beneath a half-done install
    origins: dict[str | None, list[str]] = {}
    for n in todo:
        origins.setdefault(by[n].current, []).append(n)
    for n in installed:
        origins.setdefault(by[n].permanent, []).append(n)
    if len(origins) > 1:
        parts = "; ".join(f"{v} on {', '.join(ns)}" for v, ns in origins.items())
        raise PreflightError(f"{REFUSED}the nodes run different releases ({parts}); bring them to one release first")
    names = {n.release_name for n in statuses}
    return Survey(done=done, installed=installed, todo=todo, from_vsn=next(iter(origins), None),
                  release=next(iter(names - {None}), "?"),
                  need_rel=tuple(n for n in todo + installed if by[n].release(vsn) is None))


def staged_name(release: str, vsn: str) -> str:
    """The tarball `erldeploy upload` left in the releases dir, when no --tar is given."""
    return f"{release}-{vsn}.tar.gz"


def plan(statuses: Sequence[NodeStatus], tarball: TarballInfo | None, relups: Relups,
         options: PlanOptions, *, staged: frozenset[str] = frozenset(), staged_layout: Layout | None = None,
         facts: Mapping[str, NodeFacts] | None = None, advice: Mapping[str, Sequence[str]] | None = None
         ) -> Plan:
    """The plan, or the PreflightError that refuses it.

    statuses: every member, in order; tarball: the one given, inspected (or None);
    relups: what preflight read; staged: the nodes that hold staged_name() already, and
    staged_layout that tarball's layout; facts: per node, what else preflight read;
    advice: per node, doctor's warnings (the plan carries them, one line each, naming the node)."""
    vsn = options.vsn
    facts = facts or {}
    sv = survey(statuses, vsn)
    by = {n.node: n for n in statuses}
    tar = tarball
    replace: tuple[str, ...] = ()
    if tar is not None:
        if tar.vsn != vsn:
            raise PreflightError(f"{tar.path.name} holds release {tar.name} {tar.vsn}, not {vsn}")
        if tar.name != sv.release and sv.release != "?":
            raise PreflightError(f"{tar.path.name} is release {tar.name}, the nodes run {sv.release}")
        replace = _stale(statuses, tar, facts, options)
        if replace:
            sv = replace_survey(sv, replace, [n.node for n in statuses])
    elif sv.need_rel:
        missing = [n for n in sv.need_rel if n not in staged]
        if missing:
            raise PreflightError(f"release {vsn} is not on {', '.join(missing)} and no tarball was "
                                 f"given (--tar PATH); known there: "
                                 f"{', '.join(r.vsn for r in by[missing[0]].releases) or 'none'}")
    if tar is not None:       # the tarball's own relup is the target's
        relups = Relups(target=tar.relup, running=relups.running)
    direction = "up"
    notes: list[str] = []
    if sv.todo and sv.from_vsn is not None and options.restart:
        from .executor_restart import relup_note
        try:    # a restart needs no relup of its own: the direction is only reported
            direction = _direction(vsn, sv.from_vsn, relups)
        except PreflightError:
            direction = "down" if _is_old(statuses, vsn) else "up"
        notes.append(relup_note(relups, vsn, sv.from_vsn, direction))
    elif sv.todo and sv.from_vsn is not None:
        direction = _direction(vsn, sv.from_vsn, relups)
        restarting = _restarting_entry(vsn, sv.from_vsn, relups, direction)
        if restarting:
            # every node reboots through heart: only restart mode checks first that it comes back
            raise PreflightError(f"{REFUSED}{restarting}: each node reboots through heart (release_handler's "
                                 f"start_prg with new_start_erl.data); run it with --restart, which checks "
                                 f"heart and the start program on every node first")
    agent = options.agent and not options.restart
    first = by[statuses[0].node] if statuses else None
    if tar is not None and first is not None and tar.erts != first.erts_version:
        notes.append(f"release {vsn} needs ERTS {tar.erts}, the nodes run "
                     f"{first.erts_version}: the install restarts the emulator")
    order = batches(sv.todo, options.strategy, options.batch, options.max_parallel)
    if sv.need_rel and options.dry_run:
        notes.append(f"check_install_release runs after unpacking, node by node, on {', '.join(sv.need_rel)}")
    layout = tar.layout if tar is not None else staged_layout
    need_upload = sv.need_rel if tar is not None else ()
    _check_space(by, facts, need_upload, sv.need_rel, tar)
    _check_libs(facts, sv.need_rel, tar)
    adopt = tuple(n.node for n in statuses if n.adoption and n.node not in sv.done)
    if adopt:
        notes.append(f"adopts {', '.join(adopt)} first (no usable RELEASES: create_RELEASES from the running "
                     "release's .rel, then restart release_handler under sasl_sup)")
    if layout is not None and layout.tool == "relx" and sv.todo:
        notes.append(f"relx start script: after make_permanent, bin/{layout.name}-{vsn} is copied over "
                     f"bin/{layout.name} (it hard-codes the version it boots)")
    if layout is not None and layout.tool == "distillery" and sv.todo:
        notes.append("Distillery start script: var/start_erl.data is rewritten after make_permanent "
                     "(release_handler never updates it)")
    if tar is not None and layout is not None and sv.need_rel:
        kept = kept_old(tar.members, layout)
        if kept:
            notes.append("keep_old_files: where a node has them already, its own "
                         f"{', '.join(kept[:6])}{' ...' if len(kept) > 6 else ''} stay (the tarball's are not used)")
    return Plan(release=sv.release, from_vsn=sv.from_vsn, to_vsn=vsn, direction=direction,
                batches=order, already_permanent=sv.done, installed_not_permanent=sv.installed,
                need_upload=need_upload, need_unpack=sv.need_rel,
                tarball=str(tar.path) if tar is not None else None, agent=agent, notes=tuple(notes),
                nodes=tuple(NodeTarget(n.node, n.current, n.permanent, n.root_dir, n.releases_dir, n.cwd,
                                       n.cwd_ok, n.adoption, n.rel_file) for n in statuses),
                layout=layout, adopt=adopt, replace_unpacked=replace, tar=tar,
                expected_apps=tuple(sorted(tar.apps.items())) if tar is not None else (),
                restart=options.restart,
                warnings=tuple(f"{n.node}: {w}" for n in statuses for w in (advice or {}).get(n.node, ())))


def _is_old(statuses: Sequence[NodeStatus], vsn: str) -> bool:
    """vsn was permanent once on some node (state old): going there is going back."""
    return any(r.vsn == vsn and r.state == "old" for n in statuses for r in n.releases)


def _restarting_entry(vsn: str, from_vsn: str, relups: Relups, direction: str) -> str | None:
    """What the relup entry release_handler will use restarts the emulator with, said in a
    few words, or None for a hot entry."""
    from .executor_restart import restarts

    relup, instrs = ((relups.target, relups.target.up_from.get(from_vsn, [])) if direction == "up" and relups.target
                     else (relups.running, relups.running.down_to.get(vsn, []) if relups.running else []))
    if not restarts(instrs):
        return None
    how = "restart_new_emulator" if instrs and instrs[0] == "restart_new_emulator" else "restart_emulator"
    where = f"releases/{relup.vsn}/relup" if relup else "the relup"
    return f"{where}'s entry {from_vsn} -> {vsn} restarts the emulator ({how})"


def _direction(vsn: str, from_vsn: str, relups: Relups) -> str:
    """up: the target's relup has an entry for from_vsn (and a down entry back);
    down: the running release's relup has a down entry to the target."""
    target = relups.target
    if target is not None and from_vsn in target.up_from:
        if from_vsn not in target.down_to:
            raise PreflightError(f"preflight refused: the relup of {vsn} can upgrade from {from_vsn} "
                                 f"but has no down instructions back to it, so a failed install could "
                                 f"not be rolled back")
        return "up"
    if relups.running is not None and vsn in relups.running.down_to:
        return "down"
    if target is None:
        raise PreflightError(f"preflight refused: release {vsn} has no relup (missing relup), "
                             f"so it can not be hot-installed over {from_vsn} (--restart installs it "
                             f"by restarting each node)")
    known = ", ".join(sorted(target.up_from)) or "none"
    raise PreflightError(f"preflight refused: the relup of {vsn} has no entry for the running "
                         f"version {from_vsn} (it upgrades from: {known})")


def needs_running_relup(vsn: str, from_vsn: str, target: Relup | None) -> bool:
    """The running release's relup is read only when the target's cannot decide."""
    del vsn
    return target is None or from_vsn not in target.up_from


def _stale(statuses: Sequence[NodeStatus], tar: TarballInfo, facts: Mapping[str, NodeFacts],
           options: PlanOptions) -> tuple[str, ...]:
    """Nodes where VSN is unpacked from another build than this tarball (its apps or its
    relup differ): refused, or with --replace-unpacked, replaced."""
    stale: dict[str, str] = {}
    want_libs = {f"{a}-{v}" for a, v in tar.apps.items()}
    for n in statuses:
        rel = n.release(options.vsn)
        if rel is None or rel.state != "unpacked":
            continue
        why = []
        if rel.libs and set(rel.libs) != want_libs:
            diff = sorted(set(rel.libs) ^ want_libs)
            why.append(f"its applications differ ({', '.join(diff[:4])}{'...' if len(diff) > 4 else ''})")
        f = facts.get(n.node)
        if f is not None and tar.relup is not None and not _same_relup(f.unpacked_relup, tar.relup):
            why.append("its relup differs" if f.unpacked_relup is not None else "it has no relup")
        if why:
            stale[n.node] = " and ".join(why)
    if stale and not options.replace_unpacked:
        parts = "; ".join(f"{n}: {why}" for n, why in stale.items())
        raise PreflightError(f"{REFUSED}release {options.vsn} is already unpacked from another build ({parts}). "
                             f"Run again with --replace-unpacked to remove it there (release_handler:"
                             f"remove_release) and unpack {tar.path.name}")
    return tuple(stale)


def _same_relup(a: Relup | None, b: Relup) -> bool:
    return a is not None and a.up_from == b.up_from and a.down_to == b.down_to


def replace_survey(sv: Survey, replace: tuple[str, ...], order: list[str]) -> Survey:
    """The survey once the stale unpacked releases are gone: those nodes need the tarball."""
    need = set(sv.need_rel) | set(replace)
    return Survey(sv.done, sv.installed, sv.todo, sv.from_vsn, sv.release,
                  tuple(n for n in order if n in need))


def _check_space(by: Mapping[str, NodeStatus], facts: Mapping[str, NodeFacts], need_upload: Sequence[str],
                 need_unpack: Sequence[str], tar: TarballInfo | None) -> None:
    problems = []
    for n in need_unpack:
        f = facts.get(n)
        if f is None:
            continue
        if f.writable is False:
            problems.append(f"{n}: the releases dir {by[n].releases_dir} is not writable")
            continue
        need = (tar.unpacked_size + (tar.size if n in need_upload else 0)) if tar is not None else 0
        if f.free_bytes is not None and need and f.free_bytes < need:
            problems.append(f"{n}: {f.free_bytes // 1024} KiB free in {by[n].releases_dir}, the release "
                            f"needs {need // 1024} KiB (tarball and unpacked)")
    if problems:
        raise PreflightError(REFUSED + "; ".join(problems))


def _check_libs(facts: Mapping[str, NodeFacts], need_unpack: Sequence[str], tar: TarballInfo | None) -> None:
    """A partial tarball (libs left out, as `erldeploy relup` writes by default) only
    installs where the node has those lib dirs: check_install_release would fail after
    the unpack otherwise."""
    if tar is None or not tar.omitted_libs:
        return
    problems = []
    for n in need_unpack:
        f = facts.get(n)
        if f is None or f.lib_dirs is None:
            continue
        lacking = [d for d in tar.omitted_libs if d not in f.lib_dirs]
        if lacking:
            problems.append(f"{n}: {tar.path.name} leaves out lib/{', lib/'.join(lacking[:4])}"
                            f"{' ...' if len(lacking) > 4 else ''} and the node has no such dir")
    if problems:
        raise PreflightError(REFUSED + "; ".join(problems) + " (a partial tarball: build it with "
                             "`erldeploy relup --full`, or include those libs)")
