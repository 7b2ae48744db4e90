"""Install steps through the on-node agent (the default).

Each node installs and verifies under a lease, then waits for our commit. While the
run goes on elsewhere we renew the leases; if we die or lose the network, every node
that has not been committed rolls itself back. Crash reports captured on the node
during the upgrade window are attached to its outcome.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Sequence

from ..errors import AgentError, ReleaseError
from .agent import AgentClient, GuardEvent
from .agent.lease import LeaseRenewer
from .executor_plain import PlainExecutor
from .terms import show

if TYPE_CHECKING:
    from ..erldist.node import LocalNode
    from .install import Emit, InstallOptions
    from .nodeops import NodeOps
    from .outcome import NodeOutcome
    from .relay import Delivery
    from .steps import NodeSteps
    from .tarball import TarballInfo


class AgentExecutor:
    # the guard checks (check_install_release), installs and verifies on the node itself
    verifies_on_node = True

    def __init__(self, ops: "NodeOps", local: "LocalNode", steps: "NodeSteps", emit: "Emit", vsn: str,
                 opts: "InstallOptions"):
        self.ops = ops
        self.steps = steps
        self.emit = emit
        self.vsn = vsn
        self.opts = opts
        self.client = AgentClient(local)
        self.plain = PlainExecutor(ops, steps, emit, vsn)    # where no guard holds the node
        self.guarded: set[str] = set()        # nodes whose guard waits for commit
        self.touched: set[str] = set()        # nodes the agent was loaded on
        self.renewer = LeaseRenewer(lambda n: self.client.renew(n, vsn), lambda: self.guarded, opts.lease,
                                    lambda n, e: emit(n, "lease", "info", f"renewal failed: {e}"))

    # --- steps ---------------------------------------------------------------------

    async def upload(self, node: str, tar: "TarballInfo", releases_dir: str, name: str,
                     progress: Callable[[int, int], None] | None = None) -> None:
        self.touched.add(node)
        await self.client.upload(node, tar.path, progress=progress, name=name, sha256=tar.sha256, md5=tar.md5,
                                 releases_dir=releases_dir)

    async def ship(self, nodes: "Sequence[str]", tar: "TarballInfo", name: str, full_for: "Sequence[str]" = ()
                   ) -> "dict[str, Delivery]":
        """The payload into every node's releases dir at once: deltas, relayed (ship.py)."""
        from .ship import ship

        self.touched.update(nodes)

        def shown(d: "Delivery") -> None:
            # bytes per node and where they came from; a miss uploads again in the node's stage
            self.emit(d.node, "upload", "ok" if d.ok else "info", d.describe(), seconds=d.seconds)

        return await ship(self.ops, self.client, nodes, tar, name, full_for=full_for, on_delivery=shown,
                          progress=lambda n, done, total: self.emit(n, "upload", "progress", done=done,
                                                                    total=total))

    async def install(self, node: str, out: "NodeOutcome", expected_apps: dict[str, str]) -> None:
        self.touched.add(node)

        def on_event(ev: GuardEvent) -> None:
            crash = ev.crash
            if crash is not None:
                out.crash_reports.append(str(crash))
                self.emit(node, "crash", "info", str(crash))
            elif ev.kind in ("rollback", "lease_expired"):   # stages mirror our own events
                self.emit(node, ev.kind, "info", _brief(ev.data))

        res = await self.client.guard_install(node, self.vsn, self.opts.lease, verify=self.opts.verify,
                                              expected_apps=expected_apps, on_event=on_event,
                                              install_timeout=self.opts.install_timeout)
        for c in res.crashes:
            if str(c) not in out.crash_reports:
                out.crash_reports.append(str(c))
        if res.ok:
            self.guarded.add(node)
            self.renewer.start()
            return
        if res.node_restarting:
            self.emit(node, "wait", "info", "the node restarts into its permanent release")
            await self.steps.wait_back(node)
        raise ReleaseError(res.describe(), node=node)

    async def commit(self, node: str) -> None:
        if node in self.guarded:
            await self.client.commit(node, self.vsn)
            self.guarded.discard(node)
        else:   # installed by an earlier, interrupted run: no guard there
            await self.plain.commit(node)

    async def abort(self, node: str, back_to: str) -> None:
        if node in self.guarded:
            self.guarded.discard(node)
            try:
                await self.client.abort(node, self.vsn)
                return
            except AgentError:
                pass   # the guard is gone (lease already expired?): fall through to check/plain
        cur, _ = await self.steps.current_and_permanent(node)
        if cur != back_to:
            await self.plain.abort(node, back_to)

    async def close(self) -> None:
        await self.renewer.stop()
        # leave nothing behind, on every node at once; a node with a live guard keeps it
        # (its lease still protects it)
        await self.ops.each(self.client.unload, sorted(self.touched - self.guarded))


def _brief(data: Any) -> str:
    """One line for a guard event's data: {Stage, Progress} as "install started", "install 12 ms"."""
    if isinstance(data, tuple) and len(data) == 2 and isinstance(data[0], str):
        step, what = data
        if isinstance(what, str):
            return f"{step} {what}"
        return f"{step} {show(what)}" + (" ms" if isinstance(what, int) else "")
    if isinstance(data, (str, bytes)):
        return data if isinstance(data, str) else data.decode("utf-8", "replace")
    text = show(data)
    return text if len(text) < 160 else text[:157] + "..."
