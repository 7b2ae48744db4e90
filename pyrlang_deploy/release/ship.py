"""Get a release tarball into many nodes' releases dirs: only what each lacks, once.

    ship(ops, client, nodes, tar, name) -> {node: Delivery}

  1. the agent on every node; each reports its lib/APP-VSN and erts-VSN dirs with digests
     (inventory.py, one RPC per node)
  2. nodes grouped by what they lack (delta.py, pure); nodes sharing a releases dir on one
     host are one receiver
  3. one payload per group (payload.py: the original tarball, or a delta of it), uploaded
     by the controller to the group's seed, then relayed node to node (relay.py); a small
     payload (DIRECT_BYTES) is uploaded to every node of its group straight from here

The file lands as ``name`` in every releases dir, verified there (size and digest) before
its atomic rename, so unpack_release sees it as if the whole tarball had been uploaded.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import ErldeployError
from ..term.types import Atom
from . import payload as payload_
from .delta import Delta, plan_deltas, share_roots
from .inventory import contents_of, inventory
from .relay import CONTROLLER, Delivery, SourceLost, TargetFailed, spread
from .terms import show

if TYPE_CHECKING:
    from .agent import AgentClient
    from .nodeops import NodeOps
    from .tarball import TarballInfo

COPY_TIMEOUT = 600.0
# A payload this small goes from the controller to as many nodes as fit in this many bytes
# (at least `seeds`): 32 direct uploads of an 8 KB delta beat five rounds of relaying, and
# the controller's link still carries well under one tarball. Bigger payloads are relayed.
DIRECT_BYTES = 512 * 1024
BUSY_RETRIES = 20          # a target's previous upload process may still be going away

Progress = Callable[[str, int, int], None]


async def ship(ops: NodeOps, client: AgentClient, nodes: Iterable[str], tar: TarballInfo, name: str, *,
               delta: bool = True, full_for: Iterable[str] = (), seeds: int = 1,
               on_delivery: Callable[[Delivery], None] | None = None,
               progress: Progress | None = None) -> dict[str, Delivery]:
    """full_for: nodes that get the whole tarball whatever they have (a stale release
    about to be removed there takes its lib dirs with it)."""
    targets = list(nodes)
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
    contents = contents_of(tar.path)
    got = await ops.each(lambda n: inventory(ops.rpc, n, contents), ready)
    invs = []
    for n in ready:
        if got[n].ok:
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
        payloads = [payload_.build(tar.path, d, Path(tmp), i, sha256=tar.sha256, md5=tar.md5)
                    for i, d in enumerate(deltas)]
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


class _Sender:
    def __init__(self, ops: NodeOps, client: AgentClient, name: str, progress: Progress | None,
                 on_delivery: Callable[[Delivery], None] | None):
        self.ops, self.client, self.name = ops, client, name
        self.progress, self.on_delivery = progress, on_delivery

    async def send(self, p: payload_.Payload, seeds: int) -> dict[str, Delivery]:
        seeds = max(1, seeds, DIRECT_BYTES // max(1, p.size))
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
