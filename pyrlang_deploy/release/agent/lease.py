"""The one lease renewer: while a run goes on elsewhere, every guarded node's lease is
renewed well before it runs out (a third of the lease), all nodes at once."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable

from ...errors import ErldeployError


class LeaseRenewer:
    def __init__(self, renew: Callable[[str], Awaitable[None]], nodes: Callable[[], Iterable[str]],
                 lease_s: float, on_failure: Callable[[str, ErldeployError], None]) -> None:
        self.renew = renew
        self.nodes = nodes                     # read at each round: nodes come and go
        self.interval = max(0.5, lease_s / 3)
        self.on_failure = on_failure
        self._task: asyncio.Task | None = None
        self._failing: set[str] = set()

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            await asyncio.gather(*(self._one(n) for n in list(self.nodes())))

    async def _one(self, node: str) -> None:
        try:
            await self.renew(node)
        except ErldeployError as e:
            if node not in self._failing:      # said once, until a renewal works again
                self._failing.add(node)
                self.on_failure(node, e)
        else:
            self._failing.discard(node)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
