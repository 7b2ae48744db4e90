"""Upload a tarball to many nodes at once: with the agent (default) relayed node to node
and once per shared releases dir (ship.py), the whole file or (delta=True) only what each
node lacks; with plain RPC the whole file to each node."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from ..errors import ReleaseError
from .status import cluster_status
from .tarball import TarballInfo
from .upload import upload_name, upload_plain

if TYPE_CHECKING:
    from ..cluster import Cluster, NodeResult
    from .relay import Delivery


async def upload_everywhere(c: Cluster, tar: TarballInfo, *, agent: bool = True, delta: bool = False,
                            progress: Callable[[str, int, int], None] | None = None,
                            on_delivery: Callable[[Delivery], None] | None = None
                            ) -> dict[str, NodeResult]:
    """Stage ``tar`` in every member's releases dir, holding the deploy lock (lock.py)."""
    from .lock import deploy_lock

    async with deploy_lock(c, f"upload {tar.path.name}"):
        return await _upload(c, tar, agent, delta, progress, on_delivery)


async def _upload(c: Cluster, tar: TarballInfo, agent: bool, delta: bool,
                  progress: Callable[[str, int, int], None] | None,
                  on_delivery: Callable[[Delivery], None] | None) -> dict[str, NodeResult]:
    if agent:
        from ..cluster import NodeResult
        from .agent import AgentClient
        from .ship import ship
        client = AgentClient(c.node)
        try:
            got = await ship(c, client, c.members, tar, upload_name(tar), delta=delta,
                             progress=progress, on_delivery=on_delivery)
        finally:
            await c.each(client.unload)
        return {n: NodeResult(n, value=d, seconds=d.seconds) if d.ok
                else NodeResult(n, error=ReleaseError(d.error or "", node=n)) for n, d in got.items()}
    st = await cluster_status(c, c.members, full=False)
    dirs = {n.node: n.releases_dir for n in st.nodes if n.reachable}

    def cb(node: str):
        return (lambda done, total: progress(node, done, total)) if progress else None

    return await c.each(lambda n: upload_plain(c, n, tar, dirs[n], cb(n)))
