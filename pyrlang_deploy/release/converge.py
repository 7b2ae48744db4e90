"""After a run, is the cluster split, and which one command brings it back to one release?

Pure: from each node's final (current, permanent) and the run's decision. The guards of
one run follow one decision, so a split is left only by a partition between nodes (a
guard that could reach neither the decision nor a peer's record of it rolls back), a
node lost during the commit, or a make_permanent that failed; the way out is the same
install run again, aimed at the release the cluster decided on.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from ..term.types import Atom
from .terms import text

if TYPE_CHECKING:
    from .nodeops import NodeOps
    from .outcome import NodeOutcome
    from .status import ClusterStatus


def converge_target(outcomes: Iterable[NodeOutcome], to_vsn: str, from_vsn: str | None,
                    decided: str | None) -> str | None:
    """The release to converge on when the reachable nodes are not all on one release; else None."""
    seen = [(o.current, o.permanent) for o in outcomes if o.current is not None]
    if not seen or (len(set(seen)) == 1 and seen[0][0] == seen[0][1]):
        return None
    if decided == "commit":
        return to_vsn
    if decided == "abort":
        return from_vsn
    # no decision process (plain RPC): a node made permanent on the target means every node verified
    return to_vsn if any(p == to_vsn for _, p in seen) else from_vsn


def converge_hint(outcomes: Iterable[NodeOutcome], to_vsn: str, from_vsn: str | None,
                  decided: str | None) -> str | None:
    """'the cluster is split (...); converge with: erldeploy install V -n A -n B'."""
    outs = list(outcomes)
    target = converge_target(outs, to_vsn, from_vsn, decided)
    if target is None:
        return None
    where = "; ".join(f"{o.node} runs {o.current} (permanent {o.permanent})" for o in outs if o.current)
    nodes = " ".join(f"-n {o.node}" for o in outs)
    return f"The cluster is split ({where}); converge with: erldeploy install {target} {nodes}"


def split_hint(runs: dict[str, tuple[str | None, str | None]], committed: dict[str, str]) -> str | None:
    """Pure, for `status`: nodes on different releases after a guarded run. The run's decision was
    commit wherever a guard committed it (guards commit only a decided commit), so that release."""
    seen = {n: cp for n, cp in runs.items() if cp[0] is not None}
    if len(set(seen.values())) <= 1:
        return None
    decided = {v for n, v in committed.items() if n in seen}
    if len(decided) != 1:
        return None
    target = decided.pop()
    late = sorted(n for n, (cur, perm) in seen.items() if (cur, perm) != (target, target))
    return (f"a guarded run committed {target}; {', '.join(late)} did not follow (cut off from the decision?): "
            f"converge with: erldeploy install {target} " + " ".join(f"-n {n}" for n in sorted(seen)))


async def status_hint(ops: NodeOps, st: ClusterStatus) -> str | None:
    """split_hint from the nodes' recorded guard outcomes (persistent_term: no agent needed)."""
    if st.one_release:
        return None
    nodes = [n.node for n in st.reachable]
    key = (Atom("erldeploy_agent"), Atom("last_outcome"))
    res = await ops.each(lambda n: ops.rpc(n, "persistent_term", "get", [key, Atom("undefined")]), nodes)
    committed: dict[str, str] = {}
    for n, r in res.items():
        o: Any = r.value if r.ok else None
        if isinstance(o, dict) and o.get("result") == "committed" and o.get("vsn") is not None:
            committed[n] = text(o["vsn"])
    return split_hint({n.node: (n.current, n.permanent) for n in st.reachable}, committed)
