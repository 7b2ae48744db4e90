"""One event-loop timer for many deadlines.

Every RPC has a timeout but nearly all finish long before it. A TimerHandle per
call costs an allocation, a heap push and a cancel; here a call is one tuple in
a heap and finished calls are dropped lazily when their time comes (or in bulk
when they pile up).
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from typing import Protocol


class Expirable(Protocol):
    def expired(self) -> bool:
        """Called at the deadline; True if it acted (it was still waiting)."""
        ...

    def finished(self) -> bool: ...


class Deadlines:
    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self._heap: list[tuple[float, int, Expirable]] = []
        self._seq = itertools.count()
        self._handle: asyncio.TimerHandle | None = None
        self._at = float("inf")
        self._adds = 0

    def add(self, delay: float, item: Expirable) -> None:
        when = self.loop.time() + delay
        heapq.heappush(self._heap, (when, next(self._seq), item))
        self._adds += 1
        if self._adds >= 4096:
            self._compact()
        if when < self._at:
            self._schedule(when)

    def _schedule(self, when: float) -> None:
        if self._handle is not None:
            self._handle.cancel()
        self._at = when
        self._handle = self.loop.call_at(when, self._fire)

    def _fire(self) -> None:
        self._handle = None
        self._at = float("inf")
        heap, now = self._heap, self.loop.time()
        while heap and heap[0][0] <= now:
            _, _, item = heapq.heappop(heap)
            if not item.finished():
                item.expired()
        while heap and heap[0][2].finished():
            heapq.heappop(heap)
        if heap:
            self._schedule(heap[0][0])

    def _compact(self) -> None:
        self._adds = 0
        live = [e for e in self._heap if not e[2].finished()]
        if len(live) < len(self._heap):
            heapq.heapify(live)
            self._heap = live
            if not live and self._handle is not None:
                self._handle.cancel()
                self._handle = None
                self._at = float("inf")

    def __len__(self) -> int:
        return len(self._heap)

    def close(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
        self._handle = None
        self._heap.clear()
