"""Upload a tarball to many nodes at once, with the agent (default) or plain RPC."""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

from .status import cluster_status
from .tarball import TarballInfo
from .upload import upload_name, upload_plain

if TYPE_CHECKING:
    from ..cluster import Cluster, NodeResult


async def upload_everywhere(c: "Cluster", tar: TarballInfo, *, agent: bool = True,
                            progress: Callable[[str, int, int], None] | None = None
                            ) -> dict[str, "NodeResult"]:
    st = await cluster_status(c, c.members, full=False)
    dirs = {n.node: n.releases_dir for n in st.nodes if n.reachable}

    def cb(node: str):
        return (lambda done, total: progress(node, done, total)) if progress else None

    if agent:
        from .agent import AgentClient
        client = AgentClient(c.node)
        try:
            return await c.each(lambda n: client.upload(n, tar.path, name=upload_name(tar), releases_dir=dirs[n],
                                                        sha256=tar.sha256, progress=cb(n)))
        finally:
            await c.each(client.unload)
    return await c.each(lambda n: upload_plain(c, n, tar, dirs[n], cb(n)))
