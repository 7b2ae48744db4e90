"""Install steps driven by plain RPC from the controller (`install --no-agent`).

If the controller dies mid-way, nodes stay where they are (installed, not permanent);
running `install` again completes the job.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from ..errors import ConnectError, NodeDown, ReleaseError
from .upload import upload_plain

if TYPE_CHECKING:
    from .install import Emit
    from .nodeops import NodeOps
    from .outcome import NodeOutcome
    from .steps import NodeSteps
    from .tarball import TarballInfo


class PlainExecutor:
    verifies_on_node = False   # the installer checks and verifies from here

    def __init__(self, ops: NodeOps, steps: NodeSteps, emit: Emit, vsn: str):
        self.ops = ops
        self.steps = steps
        self.emit = emit
        self.vsn = vsn

    async def upload(self, node: str, tar: TarballInfo, releases_dir: str, name: str,
                     progress: Callable[[int, int], None] | None = None) -> None:
        await upload_plain(self.ops, node, tar, releases_dir, progress, name=name)

    async def install(self, node: str, outcome: NodeOutcome, expected_apps: dict[str, str]) -> None:
        await self.move(node, self.vsn)

    async def abort(self, node: str, back_to: str) -> None:
        await self.move(node, back_to)

    async def decide(self) -> None:
        pass       # no guards on the nodes: each commit below is the controller's own

    async def commit(self, node: str) -> None:
        await self.steps.make_permanent(node, self.vsn)

    async def close(self) -> None:
        pass

    async def move(self, node: str, to: str) -> None:
        """install_release(to) and find out, whatever the answer, which release the node runs."""
        ans = await self.steps.install(node, to)
        if ans.kind == "ok":
            return
        if ans.kind == "error" and await self.steps.restarting_after_error(node):
            ans.kind = "restarted_after_error"
        if ans.kind in ("restarted", "continue_after_restart", "restarted_after_error"):
            self.emit(node, "wait", "info", f"{ans.detail}; waiting for it to come back")
            await self.steps.wait_back(node)
        try:
            cur, perm = await self.steps.current_and_permanent(node)
        except (NodeDown, ConnectError):
            await self.steps.wait_back(node)
            cur, perm = await self.steps.current_and_permanent(node)
        if cur == to:
            return  # e.g. a timeout, yet the install went through
        why = {"error": f"install_release({to}) returned {{error, {ans.detail}}}",
               "timeout": f"install_release({to}) gave {ans.detail}",
               "restarted": f"the node restarted during install_release({to})",
               "continue_after_restart": f"the node restarted for {to}",
               "restarted_after_error": f"install_release({to}) failed after the point of no return "
                                        f"({ans.detail}) and the node restarted"}[ans.kind]
        raise ReleaseError(f"{node}: {why}; it now runs {cur} (permanent {perm})", node=node)
