"""Send one file to many nodes once: the controller uploads it to a seed, and every node
that holds it (verified) passes it on over its own distribution connection.

    spread(seeds_have, pending, copy, direct) -> {node: Delivery}

Each holder serves the queue one copy at a time, and each node that receives becomes a
holder too, so the holders double every round (a binomial tree): the controller's link
carries the file once per seed whatever the cluster size. A copy is one RPC to the source
(erldeploy_relay:copy/4), which streams into the target's erldeploy_upload; the target
checks size and digest before its atomic rename, as for an upload from here.

Failures: a source that goes away (node down, cannot read its copy) stops serving, and
the target it was sending to gets a direct upload from the controller; a target that
refuses or fails gets one direct upload too (its error, if that fails, is the node's).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass

from ..errors import ErldeployError

CONTROLLER = "controller"


@dataclass(frozen=True)
class Delivery:
    """How one node got its copy: bytes that arrived there and where they came from."""

    node: str
    bytes: int
    source: str           # "controller", the relaying node, "present" (it had it), or "shared with N"
    seconds: float
    size: int             # the payload's size
    full: bool = True     # the whole tarball (False: a delta)
    error: str | None = None
    path: str = ""        # where it is on the node
    skipped: bool = False  # the node had this very file already

    @property
    def ok(self) -> bool:
        return self.error is None

    def describe(self) -> str:
        if self.error:
            return self.error
        what = "tarball" if self.full else "delta"
        if self.source == "present":
            return f"{what} already there (same digest)"
        if self.source.startswith("shared"):
            return f"{what} {self.source} (same releases dir)"
        return f"{self.bytes} bytes ({what}) from {self.source}"


class SourceLost(ErldeployError):
    """The relaying node went away or could not read its copy: it serves no more."""


class TargetFailed(ErldeployError):
    """The target refused or broke the copy; it gets a direct upload."""


Copy = Callable[[str, str], Awaitable[Delivery]]       # copy(source, target)
Direct = Callable[[str, str], Awaitable[Delivery]]     # direct(target, why)


async def spread(holders: Iterable[str], pending: Iterable[str], copy: Copy, direct: Direct,
                 on_delivery: Callable[[Delivery], None] | None = None) -> dict[str, Delivery]:
    queue = deque(pending)
    out: dict[str, Delivery] = {}
    fallback: list[tuple[str, str]] = []
    tasks: set[asyncio.Task[None]] = set()

    def done(d: Delivery) -> None:
        out[d.node] = d
        if on_delivery:
            on_delivery(d)

    async def serve(src: str) -> None:
        while queue:
            dst = queue.popleft()
            try:
                d = await copy(src, dst)
            except SourceLost as e:
                fallback.append((dst, f"relay from {src} failed: {e}"))
                return
            except (TargetFailed, ErldeployError) as e:
                fallback.append((dst, f"relay from {src} failed: {e}"))
                continue
            done(d)
            start(dst)

    def start(src: str) -> None:
        tasks.add(asyncio.get_running_loop().create_task(serve(src)))

    for h in holders:
        start(h)
    try:
        while tasks:
            finished, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            tasks.difference_update(finished)
            for t in finished:
                t.result()
    finally:
        for t in tasks:
            t.cancel()
    # nobody left to relay (every holder lost), or a copy failed: straight from here
    fallback += [(n, "no relaying node left") for n in queue]
    queue.clear()

    async def one(dst: str, why: str) -> None:
        t0 = time.monotonic()
        try:
            d = await direct(dst, why)
        except ErldeployError as e:
            d = Delivery(dst, 0, CONTROLLER, time.monotonic() - t0, 0, error=f"{e} (after: {why})")
        done(d)

    await asyncio.gather(*(one(n, why) for n, why in fallback))
    return out
