"""Run a coroutine that never suspends, without an event loop.

Code written for asyncio is driven here when nothing in it waits on the loop:
the blocking distribution driver (erldist/blocking.py), whose awaitables finish
at once, and click's parsing for ``--help`` (cli/main.py). Importing asyncio
costs several bare interpreter starts, which those CLI paths cannot afford.
"""

from __future__ import annotations


class Suspended(RuntimeError):
    """The coroutine awaited something that needs an event loop (it has been closed)."""


def run_sync(coro):
    try:
        coro.send(None)
    except StopIteration as stop:
        return stop.value
    coro.close()
    raise Suspended("a coroutine driven without an event loop awaited something asynchronous")
