"""Members that should be in the cluster and are not: `status` flags them (exit 1).

Three sources, strongest first:
- the project file's environment: `members = ["a@h", ...]` (these exact nodes) and/or
  `expect = N` (at least N members); `status --expect N` overrides the count;
- what the members themselves remember: a node in `nodes(known)` that is no longer in
  `nodes(connected)` was seen and is now gone (a node killed a moment ago stays there as
  long as anything on the member still refers to it). `nodes(known)` does not say whether
  the lost node was a member or a hidden tool (a remote shell, an erl_call, a probe), so it
  counts only when every member knew it: a meshed member is connected to all of them, a
  tool usually to one. With a single member left this source cannot tell, and stays silent.

Discovery alone cannot see a dead member: it asks the live ones who they are connected to.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..term.types import Atom

if TYPE_CHECKING:
    from .nodeops import NodeOps

# Hidden tool nodes that also end up in nodes(known): ours (erldeploy-<hex>) and erl_call's (c<N>).
_TOOL_NODE = re.compile(r"^(erldeploy-[0-9a-f]+|c\d+)@")


@dataclass(frozen=True)
class Expected:
    names: tuple[str, ...] = ()      # these nodes must be members
    count: int | None = None         # at least this many members
    source: str = ""                 # where it came from, for the message


async def seen_gone(ops: NodeOps, members: list[str]) -> dict[str, list[str]]:
    """node that is gone -> the members that knew it (nodes(known) but not connected)."""
    async def one(node: str) -> tuple[set[str], set[str]]:
        known = await ops.rpc(node, "erlang", "nodes", [Atom("known")])
        connected = await ops.rpc(node, "erlang", "nodes", [[Atom("connected"), Atom("this")]])
        return set(map(str, known)), set(map(str, connected))

    res = await ops.each(one, members)
    gone: dict[str, list[str]] = {}
    for m, r in res.items():
        if not r.ok:
            continue
        known, connected = r.value
        for n in sorted(known - connected - {"nonode@nohost"}):
            if not _TOOL_NODE.match(n):
                gone.setdefault(n, []).append(m)
    return gone


def missing(members: list[str], unreachable: list[str], expected: Expected,
            gone: dict[str, list[str]]) -> list[str]:
    """Pure: one problem line per member that should be there and is not."""
    present = set(members)
    out: list[str] = []
    flagged: set[str] = set(unreachable)     # already reported as unreachable
    for n in expected.names:
        if n not in present and n not in flagged:
            out.append(f"{n}: expected ({expected.source or 'members'}) but not in the cluster")
            flagged.add(n)
    for n, by in sorted(gone.items()):
        if len(present) < 2 or not present <= set(by):
            continue   # known to some members only: a hidden tool's connection, not a member
        if n not in present and n not in flagged:
            out.append(f"{n}: was connected to {', '.join(by)} and is now down (net_kernel)")
            flagged.add(n)
    if expected.count is not None and len(present) < expected.count:
        out.append(f"expected {expected.count} members ({expected.source or 'expect'}), "
                   f"found {len(present)}: {', '.join(sorted(present)) or 'none'}")
    return out


async def check(ops: NodeOps, members: list[str], unreachable: list[str], expected: Expected) -> list[str]:
    return missing(members, unreachable, expected, await seen_gone(ops, members))
