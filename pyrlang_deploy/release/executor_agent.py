"""Install steps through the on-node agent (the default).

Each node installs and verifies under a lease, then waits for our commit. While the
run goes on elsewhere we renew the leases; if we die or lose the network, every node
that has not been committed rolls itself back. Crash reports captured on the node
during the upgrade window are attached to its outcome.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Callable

from ..errors import AgentError, ErldeployError, ReleaseError
from .agent_client import AgentClient, GuardEvent

if TYPE_CHECKING:
    from .install import Installer
    from .tarball import TarballInfo


class AgentExecutor:
    # the guard checks (check_install_release), installs and verifies on the node itself
    verifies_on_node = True

    def __init__(self, inst: "Installer"):
        self.inst = inst
        self.client = AgentClient(inst.c.node)
        self.guarded: set[str] = set()        # nodes whose guard waits for commit
        self.touched: set[str] = set()        # nodes the agent was loaded on
        self._renewer: asyncio.Task | None = None

    # --- steps ---------------------------------------------------------------------

    async def upload(self, node: str, tar: "TarballInfo", releases_dir: str,
                     progress: Callable[[int, int], None] | None = None) -> None:
        self.touched.add(node)
        await self.client.upload(node, tar.path, progress=progress, sha256=tar.sha256, md5=tar.md5,
                                 releases_dir=releases_dir)

    async def install(self, node: str) -> None:
        inst, opts = self.inst, self.inst.opts
        self.touched.add(node)
        out = inst.outcomes[node]

        def on_event(ev: GuardEvent) -> None:
            crash = ev.crash
            if crash is not None:
                out.crash_reports.append(str(crash))
                inst.emit(node, "crash", "info", str(crash))
            elif ev.kind in ("rollback", "lease_expired"):   # stages mirror our own events
                inst.emit(node, ev.kind, "info", _brief(ev.data))

        res = await self.client.guard_install(node, inst.vsn, opts.lease, verify=opts.verify,
                                              expected_apps=inst.expected_apps, on_event=on_event,
                                              install_timeout=opts.install_timeout)
        for c in res.crashes:
            if str(c) not in out.crash_reports:
                out.crash_reports.append(str(c))
        if res.ok:
            self.guarded.add(node)
            self._ensure_renewer()
            return
        if res.node_restarting:
            inst.emit(node, "wait", "info", "the node restarts into its permanent release")
            await inst.steps.wait_back(node)
        raise ReleaseError(res.describe(), node=node)

    async def commit(self, node: str) -> None:
        if node in self.guarded:
            await self.client.commit(node, self.inst.vsn)
            self.guarded.discard(node)
        else:   # installed by an earlier, interrupted run: no guard there
            await self.inst.steps.make_permanent(node, self.inst.vsn)

    async def abort(self, node: str, back_to: str) -> None:
        if node in self.guarded:
            self.guarded.discard(node)
            try:
                await self.client.abort(node, self.inst.vsn)
                return
            except AgentError:
                pass   # the guard is gone (lease already expired?): fall through to check/plain
        from .executor_plain import PlainExecutor
        cur, _ = await self.inst.steps.current_and_permanent(node)
        if cur != back_to:
            await PlainExecutor(self.inst).abort(node, back_to)

    async def close(self) -> None:
        if self._renewer is not None:
            self._renewer.cancel()
            try:
                await self._renewer
            except asyncio.CancelledError:
                pass
        # leave nothing behind, on every node at once; a node with a live guard keeps it
        # (its lease still protects it)
        await self.inst.c.each(self.client.unload, sorted(self.touched - self.guarded))

    # --- lease -----------------------------------------------------------------------

    def _ensure_renewer(self) -> None:
        if self._renewer is None:
            self._renewer = asyncio.get_running_loop().create_task(self._renew_loop())

    async def _renew_loop(self) -> None:
        interval = max(0.5, self.inst.opts.lease / 3)
        while True:
            await asyncio.sleep(interval)
            for node in list(self.guarded):
                try:
                    await self.client.renew(node, self.inst.vsn)
                except ErldeployError as e:
                    self.inst.emit(node, "lease", "info", f"renewal failed: {e}")


def _brief(data) -> str:
    from .terms import show
    if isinstance(data, tuple) and len(data) == 2 and isinstance(data[0], str):
        step, what = data     # the guard's {Stage, Progress}, e.g. {install, started}
        return f"{step} {what if isinstance(what, str) else show(what) + ' ms' if isinstance(what, int) else show(what)}"
    if isinstance(data, (str, bytes)):
        return data if isinstance(data, str) else data.decode("utf-8", "replace")
    text = show(data)
    return text if len(text) < 160 else text[:157] + "..."
