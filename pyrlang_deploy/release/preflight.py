"""Preflight: everything checked on every node before any node changes, and the plan.

Read-only: reachability, release_handler, a real RELEASES file, one from-release
(drift refused), the tarball read locally, a relup with an up entry for the running
version and a down entry back (or the running release's down entry to the target),
and check_install_release wherever the release is unpacked already.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import PreflightError
from .report import NodeOutcome, Plan
from .status import NodeStatus, cluster_status
from .tarball import TarballInfo, inspect_tarball

if TYPE_CHECKING:
    from ..cluster import Cluster
    from .install import Installer


def _batches(nodes: list[str], strategy: str, batch: int) -> list[list[str]]:
    if not nodes:
        return []
    batch = max(1, batch)
    if strategy == "all":
        return [list(nodes)]
    if strategy == "canary":
        first, rest = nodes[:1], nodes[1:]
        return [first] + [rest[i:i + batch] for i in range(0, len(rest), batch)]
    return [nodes[i:i + batch] for i in range(0, len(nodes), batch)]


async def build_plan(inst: "Installer") -> Plan:
    """Everything checked, on every node, before any node changes; the plan to follow."""
    members = list(inst.c.members)
    if inst.c.unreachable:
        lines = "; ".join(_naming(n, e) for n, e in inst.c.unreachable.items())
        raise PreflightError(f"preflight refused, no node was changed: unreachable: {lines}")
    if not members:
        raise PreflightError("preflight: no node to act on")
    inst.status = st = await cluster_status(inst.c, members, full=False)
    problems: list[str] = []
    for n in st.nodes:
        if not n.reachable:
            problems.append(f"{n.node}: unreachable ({n.error})")
        elif not n.release_handler:
            problems.append(f"{n.node}: release_handler is not running (is sasl started?)")
        elif not n.releases_file:
            problems.append(f"{n.node}: no RELEASES file in {n.releases_dir}: a `mix release`? "
                            "release_handler can not hot-upgrade it until a real RELEASES file exists")
    if problems:
        raise PreflightError("preflight refused, no node was changed: " + "; ".join(problems))

    nodes = {n.node: n for n in st.nodes}
    notes: list[str] = []
    done = [n for n in members if nodes[n].permanent == inst.vsn and nodes[n].current == inst.vsn]
    installed = [n for n in members if nodes[n].current == inst.vsn and nodes[n].permanent != inst.vsn]
    todo = [n for n in members if nodes[n].current != inst.vsn]
    for n in members:
        inst.outcomes[n] = NodeOutcome(n, nodes[n].current, inst.vsn, current=nodes[n].current,
                                       permanent=nodes[n].permanent)
    for n in done:
        inst.outcomes[n].result = "already"

    # every node must come from the same release: the one permanent beneath a half-done install
    origins = {}
    for n in todo:
        origins.setdefault(nodes[n].current, []).append(n)
    for n in installed:
        origins.setdefault(nodes[n].permanent, []).append(n)
    if len(origins) > 1:
        parts = "; ".join(f"{v} on {', '.join(ns)}" for v, ns in origins.items())
        raise PreflightError(f"preflight refused, no node was changed: the nodes run different releases "
                             f"({parts}); bring them to one release first")
    from_vsn = next(iter(origins), None)
    names = {nodes[n].release_name for n in members}
    release = next(iter(names - {None}), "?")

    need_rel = [n for n in todo + installed if nodes[n].release(inst.vsn) is None]
    if isinstance(inst.opts.tar, TarballInfo):      # inspected already (the CLI overlaps it)
        inst.tar = inst.opts.tar
        if inst.tar.vsn != inst.vsn:
            raise PreflightError(f"{inst.tar.path.name} holds release {inst.tar.name} {inst.tar.vsn}, "
                                 f"not {inst.vsn}")
    elif inst.opts.tar:
        inst.tar = await asyncio.to_thread(inspect_tarball, Path(inst.opts.tar), inst.vsn)
    if inst.tar is not None:
        if inst.tar.name != release and release != "?":
            raise PreflightError(f"{inst.tar.path.name} is release {inst.tar.name}, the nodes run {release}")
    elif need_rel:
        # uploaded earlier (`erldeploy upload`) but not unpacked: fine, no tarball needed here
        inst.staged_tar = f"{release}-{inst.vsn}.tar.gz"
        res = await inst.c.each(lambda n: inst.c.rpc(
            n, "filelib", "is_regular", [f"{nodes[n].releases_dir}/{inst.staged_tar}"]), need_rel)
        missing = [n for n in need_rel if not (res[n].ok and res[n].value is True)]
        if missing:
            raise PreflightError(f"release {inst.vsn} is not on {', '.join(missing)} and no tarball was "
                                 f"given (--tar PATH); known there: "
                                 f"{', '.join(r.vsn for r in nodes[missing[0]].releases) or 'none'}")

    direction = "up"
    if todo and from_vsn is not None:
        direction = await _check_relup(inst, from_vsn, todo[0], nodes[todo[0]])
    relup = inst.tar.relup if inst.tar else None
    if inst.opts.agent and relup is not None and from_vsn and relup.restarts_emulator(from_vsn):
        # nothing on the node survives the emulator restart to hold a lease
        inst.opts.agent = False
        notes.append("the relup restarts the emulator: installing with plain RPC, "
                     "no on-node lease across the reboot")
    need_upload = list(need_rel) if inst.tar else []
    need_unpack = list(need_rel)
    if inst.tar is not None and inst.tar.erts != nodes[members[0]].erts_version:
        notes.append(f"release {inst.vsn} needs ERTS {inst.tar.erts}, the nodes run "
                     f"{nodes[members[0]].erts_version}: the install restarts the emulator")
    return Plan(release=release, from_vsn=from_vsn, to_vsn=inst.vsn, direction=direction,
                batches=_batches(todo, inst.opts.strategy, inst.opts.batch),
                already_permanent=done, installed_not_permanent=installed,
                need_upload=need_upload, need_unpack=need_unpack,
                tarball=str(inst.tar.path) if inst.tar else None, agent=inst.opts.agent, notes=notes)


async def _check_relup(inst: "Installer", from_vsn: str, probe: str, st: NodeStatus) -> str:
    """An up entry for from_vsn in the target's relup (and a down entry back), or a down
    entry to the target in the running release's relup."""
    from .relup import parse_relup

    target_relup = inst.tar.relup if inst.tar else None
    if target_relup is None and not inst.tar and st.release(inst.vsn) is not None:
        term = await inst.steps.read_term_file(probe, f"{st.releases_dir}/{inst.vsn}/relup")
        target_relup = parse_relup(term) if term is not None else None
    elif target_relup is None and inst.staged_tar:
        term = await inst.steps.relup_in_tarball(probe, f"{st.releases_dir}/{inst.staged_tar}", inst.vsn)
        target_relup = parse_relup(term) if term is not None else None
    if target_relup is not None and from_vsn in target_relup.up_from:
        if from_vsn not in target_relup.down_to:
            raise PreflightError(f"preflight refused: the relup of {inst.vsn} can upgrade from {from_vsn} "
                                 f"but has no down instructions back to it, so a failed install could "
                                 f"not be rolled back")
        return "up"
    term = await inst.steps.read_term_file(probe, f"{st.releases_dir}/{from_vsn}/relup")
    running_relup = parse_relup(term) if term is not None else None
    if running_relup is not None and inst.vsn in running_relup.down_to:
        return "down"
    if target_relup is None:
        raise PreflightError(f"preflight refused: release {inst.vsn} has no relup (missing relup), "
                             f"so it can not be hot-installed over {from_vsn}")
    known = ", ".join(sorted(target_relup.up_from)) or "none"
    raise PreflightError(f"preflight refused: the relup of {inst.vsn} has no entry for the running "
                         f"version {from_vsn} (it upgrades from: {known})")


async def check_where_unpacked(inst: "Installer", plan: Plan) -> None:
    """check_install_release(VSN, [purge]) wherever VSN is unpacked already."""
    ready = [n for b in plan.batches for n in b if n not in plan.need_unpack]
    res = await inst.c.each(lambda n: inst.steps.check_install(n, inst.vsn), ready)
    bad = [str(r.error) for r in res.values() if not r.ok]
    if bad:
        raise PreflightError("preflight refused: " + "; ".join(bad))
    if plan.need_unpack and inst.opts.dry_run:
        plan.notes.append(f"check_install_release runs after unpacking, node by node, on "
                          f"{', '.join(plan.need_unpack)}")


def _naming(node: str, e: BaseException) -> str:
    """The error's text, led by the full node name unless it already has it."""
    text = str(e)
    return text if text.startswith(node) else f"{node}: {text}"


async def previous_release(cluster: "Cluster") -> str:
    """The release to go back to: the permanent one under a not-yet-permanent install,
    else the most recently replaced (`old`) one, agreed by every node."""
    st = await cluster_status(cluster, cluster.members, full=False)
    choices = {}
    for n in st.nodes:
        if not n.reachable:
            raise PreflightError(f"preflight: {n.node} unreachable ({n.error}); no node was changed")
        if n.current and not n.current_is_permanent:
            choices[n.node] = n.permanent
        else:
            olds = [r.vsn for r in n.releases if r.state == "old"]
            choices[n.node] = olds[0] if olds else None
    vals = set(choices.values())
    if None in vals:
        lacking = [n for n, v in choices.items() if v is None]
        raise PreflightError(f"nothing to roll back to on {', '.join(lacking)}: no old release there")
    if len(vals) > 1:
        parts = "; ".join(f"{n}: {v}" for n, v in choices.items())
        raise PreflightError(f"the nodes would roll back to different releases ({parts}); name one: rollback VSN")
    return vals.pop()
