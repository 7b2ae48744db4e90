"""Get a release tarball into many nodes' releases dirs: only what each lacks, once.

    ship(ops, client, nodes, tar, name) -> {node: Delivery}

  1. the agent on every node; each reports its lib/APP-VSN and erts-VSN dirs with digests
     (inventory.py, one RPC per node)
  2. nodes grouped by what they lack (delta.py, pure); nodes sharing a releases dir on one
     host are one receiver
  3. one payload per group (payload.py: the original tarball, or a delta of it), uploaded
     by the controller to the group's seed (a small one: to a few seeds, DIRECT_SEEDS),
     then relayed node to node (relay.py)

The file lands as ``name`` in every releases dir, verified there (size and digest) before
its atomic rename, so unpack_release sees it as if the whole tarball had been uploaded.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from collections.abc import Callable, Iterable
from contextlib import AbstractAsyncContextManager, nullcontext
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import ErldeployError
from ..term.types import Atom
from . import payload as payload_
from .delta import Contents, Delta, Inventory, plan_deltas, share_roots
from .inventory import contents_of, inventory
from .relay import CONTROLLER, Delivery, SourceLost, TargetFailed, spread
from .terms import show

if TYPE_CHECKING:
    from .agent import AgentClient
    from .nodeops import NodeOps
    from .tarball import TarballInfo

COPY_TIMEOUT = 600.0
# A small payload is uploaded from here to up to DIRECT_SEEDS nodes (as many as fit in
# DIRECT_BYTES) before the relay takes over: an 8 KB delta to 32 nodes takes three rounds
# of relaying instead of five, and the controller's link still carries a fraction of one
# tarball. More direct uploads cost the controller more CPU than the rounds they save.
DIRECT_BYTES = 512 * 1024
DIRECT_SEEDS = 4
BUSY_RETRIES = 20          # a target's previous upload process may still be going away

Progress = Callable[[str, int, int], None]


async def ship(ops: NodeOps, client: AgentClient, nodes: Iterable[str], tar: TarballInfo, name: str, *,
               delta: bool = True, full_for: Iterable[str] = (), seeds: int = 1,
               on_delivery: Callable[[Delivery], None] | None = None,
               progress: Progress | None = None, known: Inventories | None = None) -> dict[str, Delivery]:
    """full_for: nodes that get the whole tarball whatever they have (a stale release
    about to be removed there takes its lib dirs with it). known: inventories taken
    already (Prefetch, during preflight); the other nodes are asked here."""
    targets = list(nodes)
    have = dict(known.nodes) if known is not None and known.path == Path(tar.path).resolve() else {}
    out: dict[str, Delivery] = {}

    def fail(node: str, why: str) -> None:
        out[node] = Delivery(node, 0, CONTROLLER, 0.0, 0, error=why)
        if on_delivery:
            on_delivery(out[node])

    loaded = await ops.each(client.ensure_loaded, targets)
    for r in loaded.values():
        if not r.ok:
            fail(r.node, str(r.error))
    ready = [n for n in targets if loaded[n].ok]
    contents = known.contents if have else contents_of(tar.path)
    got = await ops.each(lambda n: inventory(ops.rpc, n, contents), [n for n in ready if n not in have])
    invs = []
    for n in ready:
        if n in have:
            invs.append(have[n])
        elif got[n].ok:
            invs.append(got[n].value)
        else:
            fail(n, str(got[n].error))
    followers = share_roots(invs)
    receivers = [i for i in invs if i.node not in followers]
    full = set(full_for)
    every = frozenset(u.name for u in contents.units)
    deltas = plan_deltas(contents, [i for i in receivers if delta and i.node not in full])
    rest = tuple(i.node for i in receivers if not delta or i.node in full)
    if rest:
        deltas += (Delta(every, frozenset(), rest),)
    with tempfile.TemporaryDirectory(prefix="erldeploy-delta-") as tmp:
        payloads = payload_.build_all(tar.path, deltas, Path(tmp), sha256=tar.sha256, md5=tar.md5)
        sender = _Sender(ops, client, name, progress, on_delivery)
        for res in await asyncio.gather(*(sender.send(p, seeds) for p in payloads)):
            out.update(res)
    for node, leader in followers.items():
        lead = out.get(leader)
        d = Delivery(node, 0, f"shared with {leader}", 0.0, lead.size if lead else 0,
                     lead.full if lead else True, error=None if lead and lead.ok else
                     f"{node}: its releases dir is {leader}'s, which did not get the file")
        out[node] = d
        if on_delivery:
            on_delivery(d)
    dirs = {i.node: i.releases_dir for i in invs}
    return {n: replace(out[n], path=f"{dirs[n]}/{name}" if n in dirs else "", skipped=out[n].source == "present")
            for n in targets if n in out}


@dataclass(frozen=True)
class Inventories:
    path: Path                       # the tarball they were taken against (resolved)
    contents: Contents
    nodes: dict[str, Inventory]


class Prefetch:
    """The agent loaded and every node's inventory taken while preflight still runs: both
    only read (the deploy lock is held, nothing changes meanwhile). A failure here is no
    failure: ship() asks the nodes it has no answer for. discard() unloads the agent
    where preflight refused or nothing is to be done."""

    def __init__(self, ops: NodeOps, client: AgentClient, nodes: Iterable[str], path: Path):
        self.ops, self.client, self.nodes = ops, client, list(nodes)
        self.path = Path(path).resolve()
        self.loaded: set[str] = set()
        self.taken = False            # an executor took it over (it unloads the agent when done)
        self._task = asyncio.ensure_future(self._run())

    async def _run(self) -> Inventories:
        # the tarball read here (a thread) while the agent loads there; both finish before
        # anything is decided, so discard() knows every node the agent went to
        contents, res = await asyncio.gather(asyncio.to_thread(contents_of, self.path),
                                             self.ops.each(self.client.ensure_loaded, self.nodes),
                                             return_exceptions=True)
        if isinstance(res, BaseException):
            raise res
        self.loaded = {n for n, r in res.items() if r.ok}
        if isinstance(contents, BaseException):
            raise contents
        loaded = sorted(self.loaded)
        gate = await per_host_gate(self.ops, loaded)

        async def one(n: str) -> Inventory:
            async with gate(n):
                return await inventory(self.ops.rpc, n, contents)
        got = await self.ops.each(one, loaded)
        return Inventories(self.path, contents, {n: r.value for n, r in got.items() if r.ok})

    async def result(self) -> Inventories | None:
        try:
            return await self._task
        except Exception:     # an unreadable tarball, a node gone: preflight or ship() says so
            return None

    async def discard(self) -> None:
        await self.result()
        await self.ops.each(self.client.unload, sorted(self.loaded))


async def per_host_gate(ops: NodeOps, nodes: list[str]) -> Callable[[str], AbstractAsyncContextManager]:
    """node -> the semaphore of its host: as many inventories at once per host as that host
    has cores. A cold inventory reads every file of the lib dirs it compares (7.7 MB for
    OTP's kernel, stdlib and sasl); 32 nodes of one 2-core host reading at once spend
    1.4-1.7x the CPU of two at a time, in more wall time. Nodes on hosts of their own (the
    usual cluster) are not held back. The host is the node name's; its cores are
    erlang:system_info(logical_processors_available) on one of its nodes."""
    hosts: dict[str, list[str]] = {}
    for n in nodes:
        hosts.setdefault(n.partition("@")[2], []).append(n)
    shared = {h: ns for h, ns in hosts.items() if len(ns) > 1}

    async def cores(node: str) -> int:
        got = await ops.each(lambda n: ops.rpc(n, "erlang", "system_info", [Atom("logical_processors_available")]),
                             [node])
        v = got[node].value if got[node].ok else None
        return v if isinstance(v, int) and v > 0 else 0       # 0: unknown, not held back

    counts = dict(zip(shared, await asyncio.gather(*(cores(ns[0]) for ns in shared.values()))))
    gates = {h: asyncio.Semaphore(c) for h, c in counts.items() if c}
    return lambda n: gates.get(n.partition("@")[2]) or nullcontext()


class _Sender:
    def __init__(self, ops: NodeOps, client: AgentClient, name: str, progress: Progress | None,
                 on_delivery: Callable[[Delivery], None] | None):
        self.ops, self.client, self.name = ops, client, name
        self.progress, self.on_delivery = progress, on_delivery

    async def send(self, p: payload_.Payload, seeds: int) -> dict[str, Delivery]:
        seeds = max(1, seeds, min(DIRECT_SEEDS, DIRECT_BYTES // max(1, p.size)))
        first, later = p.delta.nodes[:seeds], p.delta.nodes[seeds:]
        out: dict[str, Delivery] = {}
        direct = await asyncio.gather(*(self._direct_or_error(p, n) for n in first))
        for d in direct:
            out[d.node] = d
            if self.on_delivery:
                self.on_delivery(d)
        holders = [d.node for d in direct if d.ok]
        out.update(await spread(holders, later, lambda s, t: self.copy(p, s, t),
                                lambda t, why: self.direct(p, t), self.on_delivery))
        return out

    async def _direct_or_error(self, p: payload_.Payload, node: str) -> Delivery:
        try:
            return await self.direct(p, node)
        except ErldeployError as e:
            return Delivery(node, 0, CONTROLLER, 0.0, p.size, p.delta.full, error=str(e))

    async def direct(self, p: payload_.Payload, node: str) -> Delivery:
        t0 = time.monotonic()
        cb = (lambda done, total: self.progress(node, done, total)) if self.progress else None
        r = await self.client.upload(node, p.path, name=self.name, sha256=p.sha256, md5=p.md5, progress=cb)
        return Delivery(node, 0 if r.skipped else r.bytes, "present" if r.skipped else CONTROLLER,
                        time.monotonic() - t0, p.size, p.delta.full)

    async def copy(self, p: payload_.Payload, src: str, dst: str) -> Delivery:
        """One edge of the tree: src streams its verified copy into dst (md5: a BIF on every node)."""
        t0 = time.monotonic()
        for _ in range(BUSY_RETRIES):
            try:
                r = await self.ops.rpc(src, "erldeploy_relay", "copy",
                                       [self.name, Atom("md5"), bytes.fromhex(p.md5), Atom(dst)],
                                       timeout=COPY_TIMEOUT)
            except ErldeployError as e:     # NodeDown, a failed RPC: the source is gone
                raise SourceLost(f"{src}: {e}", node=dst) from None
            if isinstance(r, tuple) and r and r[0] == "ok":
                if self.progress:
                    self.progress(dst, p.size, p.size)
                return Delivery(dst, int(r[1]), src, time.monotonic() - t0, p.size, p.delta.full)
            if isinstance(r, tuple) and r and r[0] == "already_present":
                return Delivery(dst, 0, "present", time.monotonic() - t0, p.size, p.delta.full)
            why = r[1] if isinstance(r, tuple) and len(r) == 2 and r[0] == "error" else r
            if isinstance(why, tuple) and len(why) == 2 and why[0] == "source":
                raise SourceLost(f"{src}: {show(why[1])}", node=dst)
            reason = why[1] if isinstance(why, tuple) and len(why) == 2 and why[0] == "target" else why
            if isinstance(reason, tuple) and reason and reason[0] == "busy":
                await asyncio.sleep(0.1)
                continue
            raise TargetFailed(f"{dst}: {show(reason)}", node=dst)
        raise TargetFailed(f"{dst}: another upload of {self.name} stays in progress", node=dst)
