"""Moving a cluster from one release to another, and back.

    preflight.prepare (read-only, every node) -> plan.plan (pure) -> Plan
    ->  Installer.run(Plan) with the executor the plan chose (agent, or plain RPC):
        node by node in the plan's batches: upload, unpack, check, install, verify
    ->  make permanent everywhere, only once every node is verified.

On any failure: stop, roll the already-upgraded nodes back, leave the rest untouched,
and report every node's final state (outcome.py holds the states and their table).
Rollback is the same machine aimed at an older release ("rollbacks are just
upgrades"). Re-running after an interruption completes the job: nodes already on the
target are verified and made permanent, not reinstalled.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from ..errors import ConnectError, ErldeployError, NodeDown, ReleaseError
from . import adopt, boot, consolidated
from .converge import converge_hint
from .lock import DeployLock, deploy_lock
from .outcome import Change, NodeOutcome, NodeState, may_roll_back
from .plan import Plan, PlanOptions, check_strategy
from .preflight import check_other_builds, check_where_unpacked, prepare, previous_release
from .report import Event, InstallReport
from .steps import NodeSteps
from .tarball import TarballInfo

if TYPE_CHECKING:
    from ..cluster import Cluster
    from ..erldist.node import LocalNode
    from .hooks import HookCall, HookRunner, Output
    from .nodeops import NodeOps
    from .ship import Prefetch

LOST_NODE_WAIT = 15.0      # seconds a node found down during clean-up may take to come back
STAGE_AHEAD = 4            # nodes of later waves unpacking at once while a wave installs: 8 starved
#                            the canary's install of CPU on 2 cores (32 nodes, 4 rounds each: 0.44x vs 0.55x)

Emit = Callable[..., None]     # emit(node, step, state, detail="", seconds=0.0, **progress)


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
    replace_unpacked: bool = False
    max_parallel: int = 0                   # the largest wave (0: no cap)
    on_event: Callable[[Event], None] | None = None
    restart: bool = False                   # restart mode (executor_restart.py)
    before: HookCall | None = None        # hooks.py
    after: HookCall | None = None
    drain: HookCall | None = None         # restart mode only
    on_output: Output | None = None       # a hook's io output, as it comes

    def plan_options(self, vsn: str) -> PlanOptions:
        return PlanOptions(vsn=vsn, strategy=self.strategy, batch=self.batch, agent=self.agent,
                           dry_run=self.dry_run, replace_unpacked=self.replace_unpacked, restart=self.restart,
                           max_parallel=self.max_parallel)


def parse_verify(spec: str | None, *, option: str = "--verify") -> tuple[str, str, list[Any]] | None:
    """`mod:fun` or `mod:fun(arg, ...)` with Erlang-term args -> (mod, fun, args)."""
    if not spec:
        return None
    from ..errors import UsageError

    head, _, rest = spec.partition("(")
    mod, sep, fun = head.strip().partition(":")
    if not sep or not mod or not fun:
        raise UsageError(f"{option} {spec!r}: expected MOD:FUN or MOD:FUN(ARGS)")
    mod, fun = (_unquoted(a.strip()) for a in (mod, fun))    # 'Elixir.MyApp.Release':migrate()
    args: list[Any] = []
    if rest:
        from ..term import parse_term
        body = rest.rstrip()
        if not body.endswith(")"):
            raise UsageError(f"{option} {spec!r}: missing the closing parenthesis")
        try:
            args = list(parse_term("[" + body[:-1] + "]"))
        except Exception as e:
            raise UsageError(f"{option} {spec!r}: bad arguments: {e}") from None
    return mod, fun, args


def _unquoted(name: str) -> str:
    if len(name) >= 2 and name[0] == name[-1] == "'":
        from ..term import parse_term
        try:
            return str(parse_term(name))
        except Exception:
            pass
    return name


class Executor(Protocol):
    """How a node's release is changed: executor_agent (guarded, on the node) or executor_plain."""

    verifies_on_node: bool

    async def upload(self, node: str, tar: TarballInfo, releases_dir: str, name: str,
                     progress: Callable[[int, int], None] | None = None) -> None: ...
    async def install(self, node: str, outcome: NodeOutcome, expected_apps: dict[str, str]) -> None: ...
    async def decide(self) -> None: ...
    async def commit(self, node: str) -> None: ...
    async def abort(self, node: str, back_to: str) -> None: ...
    async def close(self) -> None: ...


def executor_for(plan: Plan, ops: NodeOps, local: LocalNode, steps: NodeSteps, emit: Emit,
                 opts: InstallOptions, hooks: HookRunner | None = None, prefetch: Prefetch | None = None,
                 lock: DeployLock | None = None
                 ) -> Executor:
    if plan.restart:
        from .executor_restart import RestartExecutor
        return RestartExecutor(ops, steps, emit, plan, hooks=hooks, drain=opts.drain,
                               relock=lock.retake if lock is not None else None)
    if plan.agent:
        from .executor_agent import AgentExecutor
        return AgentExecutor(ops, local, steps, emit, plan.to_vsn, opts,
                             nodes=[n for batch in plan.batches for n in batch], prefetch=prefetch)
    from .executor_plain import PlainExecutor
    return PlainExecutor(ops, steps, emit, plan.to_vsn)


def emitter(on_event: Callable[[Event], None] | None) -> Emit:
    def emit(node: str, step: str, state: str, detail: str = "", seconds: float = 0.0, **kw: Any) -> None:
        if on_event:
            on_event(Event(node, step, state, detail, seconds, **kw))
    return emit


def outcomes_of(plan: Plan) -> dict[str, NodeOutcome]:
    """Every node's starting outcome: untouched, or already where the plan goes."""
    out = {}
    for t in plan.nodes:
        o = NodeOutcome(t.node, t.current, plan.to_vsn, current=t.current, permanent=t.permanent)
        if t.node in plan.already_permanent:
            o.result = NodeState.ALREADY
        out[t.node] = o
    return out


class Installer:
    """One install (or rollback) run, following a Plan with one executor."""

    def __init__(self, ops: NodeOps, plan: Plan, executor: Executor, steps: NodeSteps, opts: InstallOptions,
                 *, emit: Emit, action: str = "install"):
        self.c = ops
        self.plan = plan
        self.vsn = plan.to_vsn
        self.executor = executor
        self.steps = steps
        self.opts = opts
        self.emit = emit
        self.action = action
        self.outcomes = outcomes_of(plan)
        self.expected_apps: dict[str, str] = dict(plan.expected_apps)
        self.delivered: set[str] = set()     # nodes the tarball (or their delta) reached before the waves
        self._staging: dict[str, asyncio.Task[None]] = {}   # node -> its stage(), started ahead of its wave
        self._ahead = asyncio.Semaphore(STAGE_AHEAD)
        self._stop_staging = False
        self._shared: frozenset[str] | None = None

    # --- staging ------------------------------------------------------------

    async def stage(self, node: str) -> None:
        """Upload and unpack on one node; it still runs its old code after this."""
        plan, t, out = self.plan, self.plan.target(node), self.outcomes[node]
        if not t.cwd_ok:
            # relative "./lib/..." paths in RELEASES resolve against the cwd (relx, Distillery)
            r = await self.c.rpc(node, "file", "set_cwd", [t.root_dir])
            if r != "ok":
                raise ReleaseError(f"{node}: cannot set the cwd to the release root {t.root_dir}: {r}", node=node)
            self.emit(node, "cwd", "info", f"cwd {t.cwd} -> {t.root_dir} (RELEASES has relative lib paths)")
        if node in plan.replace_unpacked:    # a stale build of VSN: release_handler may remove it (unpacked)
            await self.steps.remove_release(node, self.vsn)
            self.emit(node, "replace", "info", f"removed the stale unpacked release {self.vsn}")
        if node in plan.need_upload and node not in self.delivered:
            t0 = time.perf_counter()
            self.emit(node, "upload", "start", f"{plan.tar.size} bytes")
            await self.executor.upload(node, plan.tar, t.releases_dir, plan.layout.upload_name,
                                       progress=lambda done, total: self.emit(
                                           node, "upload", "progress", done=done, total=total))
            out.steps["upload"] = time.perf_counter() - t0
            self.emit(node, "upload", "ok", seconds=out.steps["upload"])
        if node in plan.need_unpack:
            t0 = time.perf_counter()
            await self.steps.unpack_as(node, t.releases_dir, plan.layout)
            out.steps["unpack"] = time.perf_counter() - t0
            self.emit(node, "unpack", "ok", seconds=out.steps["unpack"])
        if not self.expected_apps:
            self.expected_apps = await self.steps.release_apps(node, t.releases_dir, self.vsn)

    def may_stage_ahead(self, node: str) -> bool:
        """Staging (upload, unpack) changes no running code, so later waves do it while
        earlier ones install; not where it would first change the node in other ways
        (its cwd, a stale release removed), in restart mode, or where another node of the
        run shares its releases dir (one unpack there consumes the file of both)."""
        t = self.plan.target(node)
        return (not self.plan.restart and t.cwd_ok and node not in self.plan.replace_unpacked
                and node not in self._shared_dirs)

    @property
    def _shared_dirs(self) -> frozenset[str]:
        """Nodes of this run whose releases dir on their host is another node's too."""
        if self._shared is None:
            seen: dict[tuple[str, str], list[str]] = {}
            for t in self.plan.nodes:
                seen.setdefault((t.node.partition("@")[2], t.releases_dir.rstrip("/")), []).append(t.node)
            self._shared = frozenset(n for group in seen.values() if len(group) > 1 for n in group)
        return self._shared

    def stage_ahead(self, nodes: tuple[str, ...]) -> None:
        """Start stage() for these nodes (in this order, STAGE_AHEAD at a time); the node's
        wave awaits it. A failure is kept in its task and raised in that wave."""
        async def one(node: str) -> None:
            async with self._ahead:
                if not self._stop_staging:      # a wave failed meanwhile: not started at all
                    await self.stage(node)

        for n in nodes:
            if n not in self._staging and self.may_stage_ahead(n):
                task = asyncio.ensure_future(one(n))
                task.add_done_callback(lambda t: t.cancelled() or t.exception())   # seen in its wave
                self._staging[n] = task

    async def _staged(self, node: str) -> None:
        task = self._staging.get(node)
        await (task if task is not None else self.stage(node))

    async def check(self, node: str) -> None:
        """check_install_release where the agent's guard does not run it itself (plain RPC)."""
        if self.executor.verifies_on_node:
            return
        t0 = time.perf_counter()
        await self.steps.check_install(node, self.vsn)
        self.outcomes[node].steps["check"] = time.perf_counter() - t0
        self.emit(node, "check", "ok", "check_install_release passed", seconds=self.outcomes[node].steps["check"])

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
            # its io output streams like a hook's (stderr with --json: stdout stays JSON)
            out = self.opts.on_output
            io = (lambda text: out("verify", node, text)) if out is not None else None
            await self.steps.health(node, self.opts.verify, io=io)

    async def install_batches(self) -> None:
        for node in self.plan.installed_not_permanent:   # a previous run got this far: check it
            await self._verify_step(node)
            self.outcomes[node].apply(Change.INSTALLED)
        # The first wave stages alone; then every later wave unpacks while the earlier ones
        # install (wave order, a few at a time). Installing, the only change to running code,
        # still goes wave by wave, each verified before the next.
        if self.plan.batches:
            first = self.plan.batches[0]
            self.stage_ahead(first)
            await asyncio.gather(*(self._staging[n] for n in first if n in self._staging), return_exceptions=True)
            self.stage_ahead(tuple(n for b in self.plan.batches[1:] for n in b))
        for batch in self.plan.batches:
            res = await self.c.each(self._install_one, batch)
            failed = [r for r in res.values() if not r.ok]
            if failed:
                raise _InstallFailed("; ".join(str(r.error) for r in failed))

    async def unstage_unused(self) -> None:
        """After a failure: nodes staged ahead whose wave never came had the release unpacked
        for nothing; remove it (release_handler:remove_release), so they are left as they were."""
        # one already unpacking is let finish (release_handler would finish it anyway), then undone
        self._stop_staging = True
        await asyncio.gather(*self._staging.values(), return_exceptions=True)
        left = [n for n, o in self.outcomes.items()
                if n in self._staging and o.result is NodeState.UNTOUCHED and "unpack" in o.steps]
        if left:
            res = await self.c.each(lambda n: self.steps.remove_release(n, self.vsn), left)
            for r in res.values():
                if r.ok:
                    self.emit(r.node, "unpack", "info", f"removed {self.vsn}, unpacked ahead of a wave that never came")
                else:
                    self.outcomes[r.node].add_error(f"clean-up: {r.error}")

    async def _verify_step(self, node: str) -> None:
        t0 = time.perf_counter()
        self.emit(node, "verify", "start")
        try:
            await self.verify(node)
        except ErldeployError as e:
            self.outcomes[node].apply(Change.FAILED, str(e))
            self.emit(node, "verify", "fail", str(e))
            raise
        self.outcomes[node].steps["verify"] = time.perf_counter() - t0
        self.emit(node, "verify", "ok", seconds=time.perf_counter() - t0)

    async def _install_one(self, node: str) -> None:
        out = self.outcomes[node]
        try:
            await self._staged(node)
            await self.check(node)
        except ErldeployError as e:
            out.apply(Change.FAILED, str(e))
            self.emit(node, "stage", "fail", str(e))
            raise
        t0 = time.perf_counter()
        self.emit(node, "install", "start", f"{out.from_vsn} -> {self.vsn}")
        try:
            await self.executor.install(node, out, self.expected_apps)
        except ErldeployError as e:
            out.apply(Change.FAILED, str(e))
            self.emit(node, "install", "fail", str(e))
            raise
        out.steps["install"] = time.perf_counter() - t0
        self.emit(node, "install", "ok", seconds=time.perf_counter() - t0)
        out.apply(Change.INSTALLED)
        if self.executor.verifies_on_node:
            self.emit(node, "verify", "ok", "checked and verified on the node by the agent")
        else:
            await self._verify_step(node)

    async def adopt_all(self) -> None:
        async def one(node: str) -> None:
            self.emit(node, "adopt", "start")
            self.emit(node, "adopt", "ok", await adopt.adopt(self.c, self.plan.target(node)))

        res = await self.c.each(one, self.plan.adopt)
        failed = [r for r in res.values() if not r.ok]
        for r in failed:
            self.outcomes[r.node].apply(Change.FAILED, str(r.error))
        if failed:
            raise _InstallFailed("adoption failed: " + "; ".join(str(r.error) for r in failed))

    async def distribute(self) -> None:
        """Every node's payload before the first wave, when the executor can relay (ship.py):
        only what each node lacks, sent once. A node it missed uploads in its own stage."""
        ship = getattr(self.executor, "ship", None)
        if ship is None or not self.plan.need_upload or self.plan.tar is None:
            return
        got = await ship(self.plan.need_upload, self.plan.tar, self.plan.layout.upload_name,
                         full_for=self.plan.replace_unpacked)
        self.delivered = {n for n, d in got.items() if d.ok}
        for n in self.delivered:
            self.outcomes[n].steps["upload"] = got[n].seconds

    async def remove_unused_uploads(self) -> None:
        """After a failure: the tarball distribute() left on nodes the run never reached
        (unpack_release removes it where it ran), so untouched nodes stay untouched."""
        left = [n for n in self.delivered if "unpack" not in self.outcomes[n].steps]
        if left and self.plan.layout is not None:
            name = self.plan.layout.upload_name
            await self.c.each(lambda n: self.c.rpc(n, "file", "delete",
                                                   [f"{self.plan.target(n).releases_dir}/{name}"]), left)

    async def make_permanent(self) -> list[str]:
        async def one(node: str) -> None:
            t0 = time.perf_counter()
            await self.executor.commit(node)
            t, out = self.plan.target(node), self.outcomes[node]
            for line in await boot.keep_in_step(self.c, node, t.root_dir, t.releases_dir, self.plan.release,
                                                self.vsn):
                self.emit(node, "boot", "info", line)
            # mix releases: the target's consolidated protocols (update_paths does not switch them).
            # Only once committed: until then the relup's unconsolidated protocol modules dispatch
            # correctly, and a lease that expires rolls back with nothing of ours to undo.
            if out.from_vsn and out.from_vsn != self.vsn:
                done = await consolidated.switch(self.c, node, t.releases_dir, out.from_vsn, self.vsn)
                if done:
                    self.emit(node, "protocols", "info", done)
            self.outcomes[node].steps["permanent"] = time.perf_counter() - t0
            self.outcomes[node].apply(Change.COMMITTED)
            self.emit(node, "permanent", "ok", seconds=time.perf_counter() - t0)

        res = await self.c.each(one, self.plan.to_change)
        errors = []
        for r in res.values():
            if not r.ok:
                self.outcomes[r.node].apply(Change.FAILED, str(r.error))
                errors.append(str(r.error))
        return errors

    async def roll_back_changed(self) -> None:
        """Every node that left its from-release goes back to it; the rest are not touched."""
        changed = [o for o in self.outcomes.values()
                   if may_roll_back(o.result) and o.from_vsn and o.from_vsn != self.vsn]

        async def one(o: NodeOutcome) -> None:
            try:
                cur = await self._current_or_wait(o.node)
            except ErldeployError as e:
                # killed or cut off: nothing to roll back from here; on restart it boots its permanent release
                o.apply(Change.ROLLBACK_FAILED, f"unreachable, not rolled back ({e}); "
                        f"if it restarts it boots its permanent release {o.permanent or '?'}")
                self.emit(o.node, "rollback", "fail", str(e))
                return
            if cur == o.from_vsn:
                o.apply(Change.ROLLED_BACK)
                return
            t0 = time.perf_counter()
            self.emit(o.node, "rollback", "start", f"{cur} -> {o.from_vsn}")
            try:
                await self.executor.abort(o.node, o.from_vsn)
            except ErldeployError as e:
                o.apply(Change.ROLLBACK_FAILED, f"rollback failed: {e}")
                self.emit(o.node, "rollback", "fail", str(e))
                return
            o.steps["rollback"] = time.perf_counter() - t0
            o.apply(Change.ROLLED_BACK)
            self.emit(o.node, "rollback", "ok", seconds=time.perf_counter() - t0)

        await asyncio.gather(*(one(o) for o in changed))

    async def _current_or_wait(self, node: str) -> str | None:
        """The node's current release; a node that dropped out is given a short while to come back
        (a restart after a failed install), not the whole restart_wait: it may be dead."""
        try:
            cur, _ = await self.steps.current_and_permanent(node)
        except (NodeDown, ConnectError):
            self.emit(node, "wait", "info", "waiting for the node to come back")
            await self.steps.wait_back(node, timeout=min(self.steps.restart_wait, LOST_NODE_WAIT))
            cur, _ = await self.steps.current_and_permanent(node)
        return cur

    async def clean_up(self) -> None:
        """Roll back and read the final states; nothing that fails here may hide the report."""
        for stage in (self.roll_back_changed, self.unstage_unused, self.remove_unused_uploads, self.final_states):
            try:
                await stage()
            except ErldeployError as e:
                for o in self.outcomes.values():
                    if o.result not in (NodeState.PERMANENT, NodeState.ALREADY, NodeState.ROLLED_BACK):
                        o.add_error(f"clean-up: {e}")

    async def final_states(self) -> None:
        """Each node's current and permanent release as it reports them (which_releases: one
        call to release_handler, no status snapshot to evaluate)."""
        res = await self.c.each(self.steps.current_and_permanent, list(self.outcomes))
        for node, r in res.items():
            o = self.outcomes[node]
            if r.ok:
                o.current, o.permanent = r.value
            else:
                o.current = o.permanent = None
                o.add_error(f"unreachable afterwards: {r.error}")

    # --- the whole run ---------------------------------------------------------

    async def run(self) -> InstallReport:
        verb = _verb(self.action)
        try:
            await self.adopt_all()
            await self.distribute()
            await self.install_batches()
            await self.executor.decide()     # commit, decided once for the whole cluster
        except (_InstallFailed, ErldeployError) as e:
            await self.clean_up()
            return self.report(False, f"{verb} {self.vsn} failed: {e}. Now: {self.final_summary()}")
        except asyncio.CancelledError:
            # Ctrl-C: treated as a failure, so no node is left half-way without a word.
            # A second Ctrl-C cancels this clean-up too (the agent's leases still cover it).
            _uncancel()
            await self.clean_up()
            return self.report(False, f"{verb} {self.vsn} interrupted; the upgraded nodes were rolled back. "
                               f"Now: {self.final_summary()}")
        errors = await self.make_permanent()
        # the agent leaves the nodes (nothing more to guard) while their final states are read
        await asyncio.gather(self.final_states(), self.executor.close())
        if errors:
            return self.report(False, f"{verb} {self.vsn} verified everywhere but make_permanent failed: "
                               + "; ".join(errors) + f". Now: {self.final_summary()}")
        return self.report(True, f"{verb} {self.vsn} done: every node runs it, permanent")

    def final_summary(self) -> str:
        """Which node is in which state, grouped: the sentence printed after a failure."""
        groups: dict[tuple[str, str | None, str | None], list[str]] = {}
        for o in self.outcomes.values():
            groups.setdefault((o.result.value, o.current, o.permanent), []).append(o.node)
        parts = []
        for (result, cur, perm), nodes in groups.items():
            where = f"runs {cur or '?'}" + ("" if cur == perm else f" (permanent {perm or '?'})")
            parts.append(f"{', '.join(nodes)} {result.replace('_', ' ')}, {where}")
        return "; ".join(parts)

    def report(self, ok: bool, message: str, **kw: Any) -> InstallReport:
        hint = converge_hint(self.outcomes.values(), self.vsn, self.plan.from_vsn,
                             getattr(self.executor, "decided", None) and self.executor.decided[0])
        return _report(self.action, self.plan, self.outcomes, ok and hint is None,
                       f"{message}. {hint}" if hint else message, **kw)


def _verb(action: str) -> str:
    return "rollback to" if action == "rollback" else "install of"


def _report(action: str, plan: Plan, outcomes: dict[str, NodeOutcome], ok: bool, message: str,
            **kw: Any) -> InstallReport:
    return InstallReport(action=action, to_vsn=plan.to_vsn, ok=ok, message=message, plan=plan,
                         nodes=list(outcomes.values()), **kw)


def _uncancel() -> None:
    """Take back the cancellation we are handling, so the clean-up's own awaits run."""
    task = asyncio.current_task()
    if task is not None:
        task.uncancel()


class _InstallFailed(Exception):
    pass


async def transition(cluster: Cluster, vsn: str, opts: InstallOptions, *, action: str = "install"
                     ) -> InstallReport:
    """Preflight, plan, then (unless it is a no-op or a dry run) the run with its executor."""
    check_strategy(opts.strategy)
    if opts.drain is not None and not opts.restart:
        from ..errors import UsageError
        raise UsageError("--drain runs before a node restarts: it needs --restart")
    emit = emitter(opts.on_event)
    if opts.dry_run:       # changes nothing: no lock, and it may run beside a live install
        return await _transition(cluster, vsn, opts, action, emit)
    async with deploy_lock(cluster, f"{action} {vsn}", on_wait=lambda n, why: emit(n, "lock", "info", why)) as lock:
        return await _transition(cluster, vsn, opts, action, emit, lock)


async def _transition(cluster: Cluster, vsn: str, opts: InstallOptions, action: str, emit: Emit,
                      lock: DeployLock | None = None) -> InstallReport:
    prefetch = _prefetch(cluster, opts)
    try:
        return await _transition_with(cluster, vsn, opts, action, emit, prefetch, lock)
    finally:
        if prefetch is not None and not prefetch.taken:
            await prefetch.discard()      # refused, a no-op, or stopped before the run: agent removed


def _prefetch(cluster: Cluster, opts: InstallOptions) -> Prefetch | None:
    """While preflight reads, the agent is loaded and every node's inventory taken (ship.py's
    Prefetch): a hot install with the agent and a tarball, not a dry run."""
    if opts.dry_run or not opts.agent or opts.restart or opts.tar is None or not cluster.members:
        return None
    from .agent import AgentClient
    from .ship import Prefetch
    path = opts.tar.path if isinstance(opts.tar, TarballInfo) else Path(opts.tar)
    return Prefetch(cluster, AgentClient(cluster.node), cluster.members, path)


async def _transition_with(cluster: Cluster, vsn: str, opts: InstallOptions, action: str, emit: Emit,
                           prefetch: Prefetch | None, lock: DeployLock | None) -> InstallReport:
    steps = NodeSteps(cluster, install_timeout=opts.install_timeout, restart_wait=opts.restart_wait)
    plan = await prepare(cluster, steps, cluster.members, cluster.unreachable, opts.plan_options(vsn), opts.tar)
    verb = _verb(action)
    if plan.noop:
        return _report(action, plan, outcomes_of(plan), True,
                       f"{vsn} is already permanent on every node: nothing to do", noop=True)
    await check_where_unpacked(cluster, steps, plan)
    if plan.restart:
        from .executor_restart import preflight as restart_preflight
        await restart_preflight(cluster, plan)
    if opts.dry_run:
        return _report(action, plan, outcomes_of(plan), True, f"dry run: the {verb} {vsn} passed preflight",
                       dry_run=True)
    if prefetch is not None:
        check_other_builds(plan, await prefetch.result())
    from .hooks import HookRunner

    hooks = HookRunner(cluster, emit, timeout=opts.install_timeout, on_output=opts.on_output)
    first = plan.to_change[0]
    if opts.before is not None and plan.installed_not_permanent:
        # an earlier run changed these nodes, so it ran --before already (exactly once)
        emit(first, "before", "info", f"not run: {', '.join(plan.installed_not_permanent)} run {vsn} "
             "already (an earlier run got that far)")
    elif opts.before is not None:
        r = await hooks.run(opts.before, first)
        if not r.ok:
            return _report(action, plan, outcomes_of(plan), False, f"the --before hook {r.call} failed on "
                           f"{first}: {r.error}; nothing was changed", hooks=hooks.results)
    executor = executor_for(plan, cluster, cluster.node, steps, emit, opts, hooks=hooks, prefetch=prefetch,
                            lock=lock)
    installer = Installer(cluster, plan, executor, steps, opts, emit=emit, action=action)
    try:
        report = await installer.run()
    finally:
        await executor.close()
    if report.ok and opts.after is not None:
        r = await hooks.run(opts.after, first)
        if not r.ok:
            await installer.final_states()
            report.ok = False
            report.message = (f"{verb} {vsn} done on every node, but the --after hook {r.call} failed on "
                              f"{first}: {r.error}. Now: {installer.final_summary()}")
    report.hooks = hooks.results
    return report


async def install(cluster: Cluster, vsn: str, **options: Any) -> InstallReport:
    return await transition(cluster, vsn, InstallOptions(**options))


async def rollback(cluster: Cluster, vsn: str | None = None, **options: Any) -> InstallReport:
    target = vsn or await previous_release(cluster, cluster.members)
    return await transition(cluster, target, InstallOptions(**options), action="rollback")
