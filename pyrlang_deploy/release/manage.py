"""`permanent` and `remove`: small release_handler operations, checked on every node first.

Both hold the deploy lock (lock.py) from the check to the last node, whether called
by the CLI or through the API, so they can never interleave with another run."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..errors import PreflightError, ReleaseError
from .boot import keep_in_step
from .lock import deploy_lock
from .status import cluster_status
from .steps import make_permanent
from .terms import show

if TYPE_CHECKING:
    from ..cluster import Cluster, NodeResult


async def make_permanent_everywhere(c: Cluster, vsn: str) -> dict[str, NodeResult]:
    async with deploy_lock(c, f"permanent {vsn}"):
        return await _make_permanent(c, vsn)


async def remove_everywhere(c: Cluster, vsn: str) -> dict[str, NodeResult]:
    async with deploy_lock(c, f"remove {vsn}"):
        return await _remove(c, vsn)


async def _make_permanent(c: Cluster, vsn: str) -> dict[str, NodeResult]:
    st = await cluster_status(c, c.members, full=False)
    problems = []
    for n in st.nodes:
        if n.current != vsn and n.permanent != vsn:
            known = ", ".join(f"{r.vsn} ({r.state})" for r in n.releases) or "none"
            problems.append(f"{n.node}: {vsn} is not the current release there (releases: {known}); install it first")
    if problems:
        raise PreflightError("refused, no node was changed: " + "; ".join(problems))
    by_node = {n.node: n for n in st.nodes}

    async def one(node: str) -> str:
        if by_node[node].permanent == vsn:
            return f"{vsn} already permanent"
        await make_permanent(c, node, vsn)
        n = by_node[node]
        done = await keep_in_step(c, node, n.root_dir, n.releases_dir, n.release_name or "", vsn)
        return f"{vsn} is now permanent" + "".join(f"; {d}" for d in done)

    return await c.each(one)


async def _remove(c: Cluster, vsn: str) -> dict[str, NodeResult]:
    st = await cluster_status(c, c.members, full=False)
    problems = []
    for n in st.nodes:
        rel = n.release(vsn)
        if rel is None:
            continue
        if n.current == vsn or n.permanent == vsn:
            which = " and ".join(w for w, v in (("current", n.current), ("permanent", n.permanent)) if v == vsn)
            problems.append(f"{n.node}: {vsn} is the {which} release")
    if problems:
        raise PreflightError("refused, no node was changed: " + "; ".join(problems))
    by_node = {n.node: n for n in st.nodes}

    async def one(node: str) -> str:
        n = by_node[node]
        if n.release(vsn) is None:
            return f"{vsn} not present"
        if n.mix_release:
            # no RELEASES file: remove_release would act on release_handler's invented entry
            r = await c.rpc(node, "release_handler", "set_removed", [vsn])
            how = "marked removed (set_removed: no RELEASES file)"
        else:
            r = await c.rpc(node, "release_handler", "remove_release", [vsn])
            how = "removed"
        if r != "ok":
            raise ReleaseError(f"{node}: removing {vsn} failed: {show(r)}", node=node)
        return f"{vsn} {how}"

    return await c.each(one)
