"""Moving a cluster from one release to another, and back.

    preflight (read-only, every node: reachability, release_handler, RELEASES, one
    from-release, the tarball and its relup, check_install_release where already unpacked)
    ->  node by node in the strategy's batches: upload, unpack, check, install, verify
    ->  make permanent everywhere, only once every node is verified.

On any failure: stop, roll the already-upgraded nodes back, leave the rest untouched,
and report every node's final state. Rollback is the same machine aimed at an older
release ("rollbacks are just upgrades"). Re-running after an interruption completes the
job: nodes already on the target are verified and made permanent, not reinstalled.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from ..errors import ErldeployError, NodeDown, ReleaseError
from .preflight import build_plan, check_where_unpacked, previous_release
from .report import Event, InstallReport, NodeOutcome, Plan
from .status import ClusterStatus, NodeStatus, cluster_status
from .steps import NodeSteps
from .tarball import TarballInfo

if TYPE_CHECKING:
    from ..cluster import Cluster

STRATEGIES = ("canary", "rolling", "all")


@dataclass
class InstallOptions:
    tar: Path | TarballInfo | None = None   # a path, or a tarball inspected already
    strategy: str = "canary"
    batch: int = 1
    verify: tuple[str, str, list[Any]] | None = None
    dry_run: bool = False
    agent: bool = True
    lease: float = 30.0
    install_timeout: float = 600.0
    restart_wait: float = 120.0
    on_event: Callable[[Event], None] | None = None


def parse_verify(spec: str | None) -> tuple[str, str, list[Any]] | None:
    """`mod:fun` or `mod:fun(arg, ...)` with Erlang-term args -> (mod, fun, args)."""
    if not spec:
        return None
    from ..errors import UsageError

    head, _, rest = spec.partition("(")
    mod, sep, fun = head.strip().partition(":")
    if not sep or not mod or not fun:
        raise UsageError(f"--verify {spec!r}: expected MOD:FUN or MOD:FUN(ARGS)")
    args: list[Any] = []
    if rest:
        from ..term import parse_term
        try:
            args = list(parse_term("[" + rest.rstrip().rstrip(")") + "]"))
        except Exception as e:
            raise UsageError(f"--verify {spec!r}: bad arguments: {e}") from None
    return mod, fun, args


class Installer:
    """One install (or rollback) run over a connected cluster."""

    def __init__(self, cluster: "Cluster", vsn: str, opts: InstallOptions, *, action: str = "install"):
        if opts.strategy not in STRATEGIES:
            from ..errors import UsageError
            raise UsageError(f"unknown strategy {opts.strategy!r} (canary, rolling or all)")
        self.c = cluster
        self.vsn = vsn
        self.opts = opts
        self.action = action
        self.steps = NodeSteps(cluster, install_timeout=opts.install_timeout, restart_wait=opts.restart_wait)
        self.outcomes: dict[str, NodeOutcome] = {}
        self.tar: TarballInfo | None = None
        self.staged_tar: str | None = None   # a tarball already in the nodes' releases dirs
        self.status: ClusterStatus | None = None
        self.expected_apps: dict[str, str] = {}
        self._executor = None

    # --- events ----------------------------------------------------------

    def emit(self, node: str, step: str, state: str, detail: str = "", seconds: float = 0.0, **kw: Any) -> None:
        if self.opts.on_event:
            self.opts.on_event(Event(node, step, state, detail, seconds, **kw))

    # --- preflight --------------------------------------------------------

    async def preflight(self) -> Plan:
        return await build_plan(self)

    # --- staging ------------------------------------------------------------

    async def stage(self, node: str, plan: Plan) -> None:
        """Upload, unpack and check_install_release on one node; it still runs its old code after this."""
        st = self._status_of(node)
        out = self.outcomes[node]
        if not st.cwd_ok:
            # relative "./lib/..." paths in RELEASES resolve against the cwd (relx, Distillery)
            r = await self.c.rpc(node, "file", "set_cwd", [st.root_dir])
            if r != "ok":
                raise ReleaseError(f"{node}: cannot set the cwd to the release root {st.root_dir}: {r}", node=node)
            self.emit(node, "cwd", "info", f"cwd {st.cwd} -> {st.root_dir} (RELEASES has relative lib paths)")
            st.cwd = st.root_dir
        if node in plan.need_upload:
            t0 = time.perf_counter()
            self.emit(node, "upload", "start", f"{self.tar.size} bytes")
            await self.executor.upload(node, self.tar, st.releases_dir,
                                       progress=lambda done, total: self.emit(
                                           node, "upload", "progress", done=done, total=total))
            out.steps["upload"] = time.perf_counter() - t0
            self.emit(node, "upload", "ok", seconds=out.steps["upload"])
        if node in plan.need_unpack:
            t0 = time.perf_counter()
            stem = self.tar.path.name[:-len(".tar.gz")] if self.tar else f"{plan.release}-{self.vsn}"
            await self.steps.unpack(node, stem)
            out.steps["unpack"] = time.perf_counter() - t0
            self.emit(node, "unpack", "ok", seconds=out.steps["unpack"])
        if not self.expected_apps:
            self.expected_apps = (self.tar.apps if self.tar else
                                  await self.steps.release_apps(node, st.releases_dir, self.vsn))
        if self.executor.verifies_on_node:
            return   # the agent's guard runs check_install_release itself, first
        t0 = time.perf_counter()
        await self.steps.check_install(node, self.vsn)
        out.steps["check"] = time.perf_counter() - t0
        self.emit(node, "check", "ok", "check_install_release passed", seconds=out.steps["check"])

    def _status_of(self, node: str) -> NodeStatus:
        return next(n for n in self.status.nodes if n.node == node)

    @property
    def executor(self):
        if self._executor is None:
            if self.opts.agent:
                from .executor_agent import AgentExecutor
                self._executor = AgentExecutor(self)
            else:
                from .executor_plain import PlainExecutor
                self._executor = PlainExecutor(self)
        return self._executor

    # --- install / verify / rollback ------------------------------------------

    async def verify(self, node: str) -> None:
        cur, _ = await self.steps.current_and_permanent(node)
        if cur != self.vsn:
            raise ReleaseError(f"{node}: runs {cur} after the install, not {self.vsn}", node=node)
        if self.expected_apps:
            running = await self.steps.running_apps(node)
            wrong = [f"{a} {running[a]} (expected {v})" for a, v in sorted(self.expected_apps.items())
                     if a in running and running[a] != v]
            if wrong:
                raise ReleaseError(f"{node}: application versions differ from the release: {', '.join(wrong)}",
                                   node=node)
        if self.opts.verify:
            await self.steps.health(node, self.opts.verify)

    async def install_batches(self, plan: Plan) -> None:
        for node in plan.installed_not_permanent:   # a previous run got this far: check it
            await self._verify_step(node)
            self.outcomes[node].result = "installed"
        for batch in plan.batches:
            res = await self.c.each(lambda n: self._install_one(n, plan), batch)
            failed = [r for r in res.values() if not r.ok]
            if failed:
                raise _InstallFailed("; ".join(str(r.error) for r in failed))

    async def _verify_step(self, node: str) -> None:
        t0 = time.perf_counter()
        self.emit(node, "verify", "start")
        try:
            await self.verify(node)
        except ErldeployError as e:
            self.outcomes[node].result = "failed"
            self.outcomes[node].error = str(e)
            self.emit(node, "verify", "fail", str(e))
            raise
        self.outcomes[node].steps["verify"] = time.perf_counter() - t0
        self.emit(node, "verify", "ok", seconds=time.perf_counter() - t0)

    async def _install_one(self, node: str, plan: Plan) -> None:
        out = self.outcomes[node]
        try:
            await self.stage(node, plan)
        except ErldeployError as e:
            out.result = "failed"
            out.error = str(e)
            self.emit(node, "stage", "fail", str(e))
            raise
        t0 = time.perf_counter()
        self.emit(node, "install", "start", f"{out.from_vsn} -> {self.vsn}")
        try:
            await self.executor.install(node)
        except ErldeployError as e:
            out.result = "failed"
            out.error = str(e)
            self.emit(node, "install", "fail", str(e))
            raise
        out.steps["install"] = time.perf_counter() - t0
        self.emit(node, "install", "ok", seconds=time.perf_counter() - t0)
        out.result = "installed"
        if self.executor.verifies_on_node:
            self.emit(node, "verify", "ok", "checked and verified on the node by the agent")
        else:
            await self._verify_step(node)

    async def make_permanent(self, plan: Plan) -> list[str]:
        nodes = plan.installed_not_permanent + [n for b in plan.batches for n in b]

        async def one(node: str) -> None:
            t0 = time.perf_counter()
            await self.executor.commit(node)
            self.outcomes[node].steps["permanent"] = time.perf_counter() - t0
            self.outcomes[node].result = "permanent"
            self.emit(node, "permanent", "ok", seconds=time.perf_counter() - t0)

        res = await self.c.each(one, nodes)
        errors = []
        for r in res.values():
            if not r.ok:
                self.outcomes[r.node].result = "failed"
                self.outcomes[r.node].error = str(r.error)
                errors.append(str(r.error))
        return errors

    async def roll_back_changed(self) -> None:
        """Every node that left its from-release goes back to it; the rest are not touched."""
        changed = [o for o in self.outcomes.values()
                   if o.result in ("installed", "failed") and o.from_vsn and o.from_vsn != self.vsn]

        async def one(o: NodeOutcome) -> None:
            try:
                cur, _ = await self.steps.current_and_permanent(o.node)
            except NodeDown:
                self.emit(o.node, "wait", "info", "waiting for the node to come back")
                await self.steps.wait_back(o.node)
                cur, _ = await self.steps.current_and_permanent(o.node)
            if cur == o.from_vsn:
                if o.result == "installed":
                    o.result = "rolled_back"
                return
            t0 = time.perf_counter()
            self.emit(o.node, "rollback", "start", f"{cur} -> {o.from_vsn}")
            try:
                await self.executor.abort(o.node, o.from_vsn)
            except ErldeployError as e:
                o.result = "rollback_failed"
                o.error = (o.error + "; " if o.error else "") + f"rollback failed: {e}"
                self.emit(o.node, "rollback", "fail", str(e))
                return
            o.steps["rollback"] = time.perf_counter() - t0
            if o.result == "installed":
                o.result = "rolled_back"
            self.emit(o.node, "rollback", "ok", seconds=time.perf_counter() - t0)

        await asyncio.gather(*(one(o) for o in changed))

    async def final_states(self) -> None:
        st = await cluster_status(self.c, list(self.outcomes), full=False)
        for n in st.nodes:
            o = self.outcomes[n.node]
            if n.reachable:
                o.current, o.permanent = n.current, n.permanent
            else:
                o.current = o.permanent = None
                o.error = (o.error + "; " if o.error else "") + f"unreachable afterwards: {n.error}"

    # --- the whole run ---------------------------------------------------------

    async def run(self) -> InstallReport:
        plan = await self.preflight()
        verb = "rollback to" if self.action == "rollback" else "install of"
        if not plan.batches and not plan.installed_not_permanent:
            return self._report(True, f"{self.vsn} is already permanent on every node: nothing to do",
                                plan, noop=True)
        await check_where_unpacked(self, plan)
        if self.opts.dry_run:
            return self._report(True, f"dry run: the {verb} {self.vsn} passed preflight", plan, dry_run=True)
        try:
            await self.install_batches(plan)
        except (_InstallFailed, ErldeployError) as e:
            await self.roll_back_changed()
            await self.final_states()
            return self._report(False, f"{verb} {self.vsn} failed: {e}. Now: {self.final_summary()}", plan)
        except asyncio.CancelledError:
            # Ctrl-C: treated as a failure, so no node is left half-way without a word.
            # A second Ctrl-C cancels this clean-up too (the agent's leases still cover it).
            _uncancel()
            await self.roll_back_changed()
            await self.final_states()
            return self._report(False, f"{verb} {self.vsn} interrupted; the upgraded nodes were rolled back. "
                                f"Now: {self.final_summary()}", plan)
        errors = await self.make_permanent(plan)
        await self.final_states()
        if errors:
            return self._report(False, f"{verb} {self.vsn} verified everywhere but make_permanent failed: "
                                + "; ".join(errors) + f". Now: {self.final_summary()}", plan)
        return self._report(True, f"{verb} {self.vsn} done: every node runs it, permanent", plan)

    def final_summary(self) -> str:
        """Which node is in which state, grouped: the sentence printed after a failure."""
        groups: dict[tuple[str, str | None, str | None], list[str]] = {}
        for o in self.outcomes.values():
            groups.setdefault((o.result, o.current, o.permanent), []).append(o.node)
        parts = []
        for (result, cur, perm), nodes in groups.items():
            where = f"runs {cur or '?'}" + ("" if cur == perm else f" (permanent {perm or '?'})")
            parts.append(f"{', '.join(nodes)} {result.replace('_', ' ')}, {where}")
        return "; ".join(parts)

    def _report(self, ok: bool, message: str, plan: Plan | None, **kw: Any) -> InstallReport:
        return InstallReport(action=self.action, to_vsn=self.vsn, ok=ok, message=message, plan=plan,
                             nodes=list(self.outcomes.values()), **kw)


def _uncancel() -> None:
    """Take back the cancellation we are handling, so the clean-up's own awaits run."""
    task = asyncio.current_task()
    if task is not None:
        task.uncancel()


class _InstallFailed(Exception):
    pass


async def install(cluster: "Cluster", vsn: str, **options: Any) -> InstallReport:
    opts = InstallOptions(**options)
    inst = Installer(cluster, vsn, opts)
    try:
        return await inst.run()
    finally:
        if inst._executor is not None:
            await inst._executor.close()


async def rollback(cluster: "Cluster", vsn: str | None = None, **options: Any) -> InstallReport:
    target = vsn or await previous_release(cluster)
    opts = InstallOptions(**options)
    inst = Installer(cluster, target, opts, action="rollback")
    try:
        return await inst.run()
    finally:
        if inst._executor is not None:
            await inst._executor.close()
