"""Install steps through the on-node agent (the default).

Each node installs and verifies under a lease, then waits for our commit. While the
run goes on elsewhere we renew the leases. Commit or roll back is one decision for the
whole run, held on the first node changed (agent/decision.py): we claim commit once
every guard is ready; a guard whose lease runs out, or our connection dropping, claims
abort; the first claim holds and every guard follows it, with or without us. Crash
reports captured on the node during the upgrade window are attached to its outcome.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from ..errors import AgentError, ErldeployError, ReleaseError
from .agent import AgentClient, GuardEvent, decision
from .agent.lease import LeaseRenewer
from .executor_plain import PlainExecutor
from .terms import show

if TYPE_CHECKING:
    from ..erldist.node import LocalNode
    from .install import Emit, InstallOptions
    from .nodeops import NodeOps
    from .outcome import NodeOutcome
    from .relay import Delivery
    from .ship import Prefetch
    from .steps import NodeSteps
    from .tarball import TarballInfo


class AgentExecutor:
    # the guard checks (check_install_release), installs and verifies on the node itself
    verifies_on_node = True

    def __init__(self, ops: NodeOps, local: LocalNode, steps: NodeSteps, emit: Emit, vsn: str,
                 opts: InstallOptions, nodes: list[str] | None = None, prefetch: Prefetch | None = None):
        self.ops = ops
        self.local = local
        self.nodes = list(nodes or [])        # every node a guard may hold in this run
        self.decision: decision.Decision | None = None
        self.decided: tuple[str, str] | None = None     # (commit | abort, who took it)
        self._owner = None                    # our pid the decision process monitors
        self._starting = asyncio.Lock()
        self.steps = steps
        self.emit = emit
        self.vsn = vsn
        self.opts = opts
        self.prefetch = prefetch              # agent loaded, inventories taken during preflight
        if prefetch is not None:
            prefetch.taken = True
        self.client = prefetch.client if prefetch is not None else AgentClient(local)
        self.plain = PlainExecutor(ops, steps, emit, vsn)    # where no guard holds the node
        self.guarded: set[str] = set()        # nodes whose guard waits for commit
        self.touched: set[str] = set()        # nodes the agent was loaded on
        self._closed = False
        self.renewer = LeaseRenewer(lambda n: self.client.renew(n, vsn), lambda: self.guarded, opts.lease,
                                    lambda n, e: emit(n, "lease", "info", f"renewal failed: {e}"))

    # --- steps ---------------------------------------------------------------------

    async def upload(self, node: str, tar: TarballInfo, releases_dir: str, name: str,
                     progress: Callable[[int, int], None] | None = None) -> None:
        self.touched.add(node)
        await self.client.upload(node, tar.path, progress=progress, name=name, sha256=tar.sha256, md5=tar.md5,
                                 releases_dir=releases_dir)

    async def ship(self, nodes: Sequence[str], tar: TarballInfo, name: str, full_for: Sequence[str] = ()
                   ) -> dict[str, Delivery]:
        """The payload into every node's releases dir at once: deltas, relayed (ship.py)."""
        from .ship import ship

        self.touched.update(nodes)
        known = await self.prefetch.result() if self.prefetch is not None else None

        def shown(d: Delivery) -> None:
            # bytes per node and where they came from; a miss uploads again in the node's stage
            self.emit(d.node, "upload", "ok" if d.ok else "info", d.describe(), seconds=d.seconds)

        return await ship(self.ops, self.client, nodes, tar, name, full_for=full_for, on_delivery=shown,
                          progress=lambda n, done, total: self.emit(n, "upload", "progress", done=done,
                                                                    total=total), known=known)

    async def install(self, node: str, out: NodeOutcome, expected_apps: dict[str, str]) -> None:
        self.touched.add(node)

        def on_event(ev: GuardEvent) -> None:
            crash = ev.crash
            if crash is not None:
                out.crash_reports.append(str(crash))
                self.emit(node, "crash", "info", str(crash))
            elif ev.kind in ("rollback", "lease_expired"):   # stages mirror our own events
                self.emit(node, ev.kind, "info", _brief(ev.data))

        d = await self._decision(node)
        res = await self.client.guard_install(node, self.vsn, self.opts.lease, verify=self.opts.verify,
                                              expected_apps=expected_apps, on_event=on_event,
                                              install_timeout=self.opts.install_timeout, decision=d)
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

    async def _decision(self, node: str) -> decision.Decision:
        """The run's decision process, started on the first node a guard is started on."""
        async with self._starting:
            if self.decision is None:
                await self.client.ensure_loaded(node)
                self._owner = self.local.mailbox()
                self.decision = await decision.start(self.ops.rpc, node, self._owner.pid,
                                                     self.nodes or [node], self.opts.lease)
            return self.decision

    async def decide(self) -> None:
        """Every guard ready (nothing crashed since its verify), then claim commit for the cluster."""
        if self.decision is None or not self.guarded:
            return
        res = await self.ops.each(lambda n: self.client.ready(n, self.vsn), sorted(self.guarded))
        failed = [r for r in res.values() if not r.ok]
        if failed:
            raise ReleaseError("; ".join(str(r.error) for r in failed), node=failed[0].node)
        self.decided = await decision.claim(self.ops.rpc, self.decision, "commit")
        if self.decided[0] != "commit":
            raise ReleaseError(f"{self.decision.node}: the cluster had already decided to roll back "
                               f"({self.decided[1]}); every guard rolls its node back", node=self.decision.node)
        self.emit(self.decision.node, "decide", "info", "commit decided for every node; the guards follow it")

    async def commit(self, node: str) -> None:
        if node in self.guarded:
            try:
                await self.client.commit(node, self.vsn)
            except AgentError:
                # the pushed decision may have committed it and the agent already gone
                _, perm = await self.steps.current_and_permanent(node)
                if perm != self.vsn:
                    raise
            self.guarded.discard(node)
        else:   # installed by an earlier, interrupted run: no guard there
            await self.plain.commit(node)

    async def abort(self, node: str, back_to: str) -> None:
        if self.decision is not None and self.decided is None:
            try:    # the cluster's decision first, so no guard commits once we roll back
                self.decided = await decision.claim(self.ops.rpc, self.decision, "abort")
            except ErldeployError as e:
                self.emit(self.decision.node, "decide", "info", f"decision not reachable: {e}")
        if self.decided is not None and self.decided[0] == "commit":
            raise ReleaseError(f"{node}: not rolled back: the cluster decided commit", node=node)
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
        """Idempotent: the Installer closes early on success (beside reading the final
        states), install.transition always closes once more."""
        if self._closed:
            return
        self._closed = True
        await self.renewer.stop()
        if self.prefetch is not None:
            await self.prefetch.result()
            self.touched |= self.prefetch.loaded
        # leave nothing behind, on every node at once; a node with a live guard keeps it
        # (its lease still protects it)
        await self.ops.each(self.client.unload, sorted(self.touched - self.guarded))
        if self._owner is not None:
            self._owner.close()    # a decision still open is taken as abort


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
