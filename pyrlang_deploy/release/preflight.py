"""Preflight's I/O half: gather the facts the pure planner decides on.

Read-only on every node: each node's status and doctor's warnings (advice the plan
carries, never a refusal), the staged tarball where no tarball was given, the relups
(the target's from the tarball or from a node, the running release's for a
downgrade); the tarball is read locally. `plan.plan()` then decides,
or refuses, with no I/O. `check_where_unpacked` runs check_install_release(VSN,
[purge]) wherever the target is unpacked already; `previous_release` finds what a
rollback goes back to.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from ..doctor import doctor_warnings
from ..errors import PreflightError
from .layouts import detect
from .plan import REFUSED, NodeFacts, Plan, PlanOptions, Relups, needs_running_relup, plan, staged_name, survey
from .relup import Relup, parse_relup
from .status import NodeStatus, statuses
from .tarball import TarballInfo, inspect_tarball

if TYPE_CHECKING:
    from .nodeops import NodeOps
    from .ship import Inventories
    from .steps import NodeSteps


async def prepare(ops: NodeOps, steps: NodeSteps, members: Iterable[str], unreachable: Mapping[str, Exception],
                  options: PlanOptions, tar: Path | TarballInfo | None) -> Plan:
    """Everything checked, on every node, before any node changes; the plan to follow."""
    members = list(members)
    if unreachable:
        lines = "; ".join(_naming(n, e) for n, e in unreachable.items())
        raise PreflightError(f"preflight refused, no node was changed: unreachable: {lines}")
    if not members:
        raise PreflightError("preflight: no node to act on")
    # doctor's warnings (heart, limits, crash dumps) alongside: advice in the plan, never a refusal
    sts, advice = await asyncio.gather(statuses(ops, members, full=False), doctor_warnings(ops, members))
    sv = survey(sts, options.vsn)           # refusals about the nodes come before the tarball's
    by = {n.node: n for n in sts}
    info: TarballInfo | None = None
    if isinstance(tar, TarballInfo):         # inspected already (the CLI overlaps it with connecting)
        info = tar
    elif tar:
        info = await asyncio.to_thread(inspect_tarball, Path(tar), options.vsn)
    staged: frozenset[str] = frozenset()
    staged_tar = staged_name(sv.release, options.vsn) if info is None and sv.need_rel else None
    if staged_tar is not None:
        # uploaded earlier (`erldeploy upload`) but not unpacked: fine, no tarball needed here
        res = await ops.each(lambda n: ops.rpc(n, "filelib", "is_regular", [f"{by[n].releases_dir}/{staged_tar}"]),
                             sv.need_rel)
        staged = frozenset(n for n in sv.need_rel if res[n].ok and res[n].value is True)
    relups = Relups()
    staged_layout = None
    lacking = staged_tar is not None and not staged >= set(sv.need_rel)   # plan() refuses that first
    if sv.probe is not None and sv.from_vsn is not None and not lacking:
        relups = await _read_relups(steps, by[sv.probe], options.vsn, sv.from_vsn, info, staged_tar)
    if staged_tar is not None and not lacking:
        probe = sv.need_rel[0]
        members = await steps.tar_members(probe, f"{by[probe].releases_dir}/{staged_tar}")
        staged_layout = detect(members, sv.release, options.vsn)
    facts = await _node_facts(ops, steps, sts, options.vsn, info)
    return plan(sts, info, relups, options, staged=staged, staged_layout=staged_layout, facts=facts,
                advice=advice)


async def _node_facts(ops: NodeOps, steps: NodeSteps, sts: list[NodeStatus], vsn: str,
                      info: TarballInfo | None) -> dict[str, NodeFacts]:
    """Per node that will unpack: can its releases dir take the release (writable, free
    space), and, for a tarball that leaves libs out, the lib dirs it has; where VSN is
    unpacked already: the relup it has (a stale build?)."""
    async def one(n: NodeStatus) -> NodeFacts:
        rel = n.release(vsn)
        if rel is not None and rel.state != "unpacked":
            return NodeFacts()
        relup = None
        if rel is not None and info is not None:
            relup = _parsed(await steps.read_term_file(n.node, f"{n.releases_dir}/{vsn}/relup"))
        writable = await steps.releases_dir_writable(n.node, n.releases_dir)
        libs = None
        if rel is None and info is not None and info.omitted_libs:    # a partial tarball
            libs = await steps.lib_dirs(n.node, n.root_dir)
        return NodeFacts(writable=writable, free_bytes=free.get(n.node), unpacked_relup=relup, lib_dirs=libs)

    todo = [n for n in sts if n.current != vsn]
    unpack = {n.node: n.releases_dir for n in todo if (r := n.release(vsn)) is None or r.state == "unpacked"}
    free = await steps.free_bytes(unpack) if unpack else {}
    res = await ops.each(lambda node: one(next(n for n in todo if n.node == node)), [n.node for n in todo])
    return {node: r.value for node, r in res.items() if r.ok}


async def _read_relups(steps: NodeSteps, st: NodeStatus, vsn: str, from_vsn: str, info: TarballInfo | None,
                       staged_tar: str | None) -> Relups:
    target: Relup | None = info.relup if info is not None else None
    if info is None and st.release(vsn) is not None:
        target = _parsed(await steps.read_term_file(st.node, f"{st.releases_dir}/{vsn}/relup"))
    elif info is None and staged_tar:
        target = _parsed(await steps.relup_in_tarball(st.node, f"{st.releases_dir}/{staged_tar}", vsn))
    running = None
    if needs_running_relup(vsn, from_vsn, target):
        running = _parsed(await steps.read_term_file(st.node, f"{st.releases_dir}/{from_vsn}/relup"))
    return Relups(target=target, running=running)


def _parsed(term) -> Relup | None:
    return parse_relup(term) if term is not None else None


async def check_where_unpacked(ops: NodeOps, steps: NodeSteps, p: Plan) -> None:
    """check_install_release(VSN, [purge]) wherever VSN is unpacked already."""
    res = await ops.each(lambda n: steps.check_install(n, p.to_vsn), p.unpacked_already)
    bad = [str(r.error) for r in res.values() if not r.ok]
    if bad:
        raise PreflightError("preflight refused: " + "; ".join(bad))


def _naming(node: str, e: BaseException) -> str:
    """The error's text, led by the full node name unless it already has it."""
    text = str(e)
    return text if text.startswith(node) else f"{node}: {text}"


async def previous_release(ops: NodeOps, members: Iterable[str]) -> str:
    """The release to go back to: the permanent one under a not-yet-permanent install,
    else the most recently replaced (`old`) one, agreed by every node."""
    choices = {}
    for n in await statuses(ops, members, full=False):
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


def check_other_builds(plan: Plan, known: Inventories | None) -> None:
    """Refuse, before any change, where a node that will unpack has one of the tarball's
    lib/erts dirs from another build (delta.other_builds: unpack would keep that copy)."""
    if known is None:
        return
    from .delta import other_builds

    problems = []
    for node in plan.need_unpack:
        inv = known.nodes.get(node)
        dirs = sorted(other_builds(known.contents, inv)) if inv is not None else []
        if dirs:
            problems.append(f"{node}: {', '.join(dirs)} there is another build than the tarball's (same "
                            "version, other content), and unpack_release keeps existing files: give the "
                            "rebuilt app a new version, or remove that dir from the node if no release "
                            "there uses it")
    if problems:
        raise PreflightError(REFUSED + "; ".join(problems))
