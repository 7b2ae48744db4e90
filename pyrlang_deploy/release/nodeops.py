"""The narrow interface release code needs from a cluster: one call, and a fan-out.

`Cluster` satisfies it; so does anything else with these two methods (a test double
for pure code, a cluster of another kind). Release code never reaches further into
the cluster (members, connections, the local node) than this.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

if TYPE_CHECKING:
    from ..cluster import NodeResult

T = TypeVar("T")


class NodeOps(Protocol):
    async def rpc(self, node: str, module: str, function: str, args: Iterable[Any] = (),
                  *, timeout: float | None = None, io: Callable[[str], None] | None = None) -> Any:
        """module:function(args) on node; raises the errors of `errors` (RpcError, NodeDown...)."""
        ...

    async def each(self, fn: Callable[[str], Awaitable[T]], nodes: Iterable[str] | None = None
                   ) -> dict[str, NodeResult[T]]:
        """fn(node) on every node concurrently; a NodeResult per node, failures included."""
        ...
