"""One event-loop timer per distinct timeout value, for many deadlines.

Every RPC has a timeout but nearly all finish long before it. Calls with the
same timeout expire in the order they started, so each timeout value keeps an
insertion-ordered dict (call -> deadline): adding and removing a call are one
dict operation each, and only the oldest entry ever needs a timer.
"""

from __future__ import annotations

import asyncio
from typing import Any, Protocol


class Expirable(Protocol):
    def expired(self) -> None:
        """Called once its deadline passed, unless removed before."""
        ...


class Deadlines:
    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self._buckets: dict[float, dict[Any, float]] = {}
        self._of: dict[Any, float] = {}  # item -> its bucket (timeout value)
        self._timers: dict[float, asyncio.TimerHandle] = {}

    def add(self, timeout: float, item: Expirable) -> None:
        bucket = self._buckets.get(timeout)
        if bucket is None:
            bucket = self._buckets[timeout] = {}
        bucket[item] = self.loop.time() + timeout
        self._of[item] = timeout
        if timeout not in self._timers:
            self._timers[timeout] = self.loop.call_later(timeout, self._fire, timeout)

    def remove(self, item: Any) -> None:
        timeout = self._of.pop(item, None)
        if timeout is not None:
            del self._buckets[timeout][item]

    def _fire(self, timeout: float) -> None:
        del self._timers[timeout]
        bucket = self._buckets.get(timeout)
        if not bucket:
            return
        now = self.loop.time()
        expired = []
        for item, deadline in bucket.items():
            if deadline > now:
                self._timers[timeout] = self.loop.call_at(deadline, self._fire, timeout)
                break
            expired.append(item)
        for item in expired:
            self.remove(item)
            item.expired()
        if not bucket:
            # drop empty buckets so one-off timeout values do not accumulate
            del self._buckets[timeout]

    def __len__(self) -> int:
        return len(self._of)

    def close(self) -> None:
        for h in self._timers.values():
            h.cancel()
        self._timers.clear()
        self._buckets.clear()
        self._of.clear()
