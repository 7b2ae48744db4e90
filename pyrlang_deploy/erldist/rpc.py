"""Remote calls on the asyncio driver (LocalNode): start, await, time out.

What a call is (its frame, its reply, its io, its errors) is call.py's; this
module adds what asyncio brings: a future per call, many calls in flight on one
connection, the inline wait of a lone call, and stopping a timed-out call on the
node within STOP_GRACE.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..errors import NodeDown, RpcTimeout
from ..term.types import Pid
from .call import (  # noqa: F401 (format_reason, check_timeout: re-exported)
    STOP_GRACE,
    STOP_SOURCE,
    RpcCall,
    check_timeout,
    encode_call_frame,
    format_reason,
)
from .debuglog import get_logger

if TYPE_CHECKING:
    from .connection import Connection
    from .node import LocalNode

INLINE_BUDGET = 0.001  # how long a lone call may hold the loop waiting for its reply
INLINE_SLICE = 0.002  # the loop runs at least this often during back-to-back lone calls

log = get_logger(__name__)


def start_call(node: LocalNode, conn: Connection, module: str, function: str, args: list,
               timeout: float | None, io: Callable[[str], Any] | None, stop_on_timeout: bool = True) -> RpcCall:
    """Send one call on an open connection; its ``future`` resolves to the result.

    Synchronous on purpose: many calls can be started in one event-loop pass and
    awaited together without a Task each (see ``LocalNode.rpc_future``).
    """
    loop = conn._loop
    table = node.table
    pid_ids, wpid = table.new_wire_pid()
    ref_ids, wref = table.new_wire_ref()
    pieces = encode_call_frame(wpid, wref, module, function, args)
    if len(pieces) == 1:
        # send first, book-keep after: the node works on the call meanwhile, and
        # nothing can be read before this function returns to the loop
        conn.write(pieces[0])
    proc = RpcCall(node, conn, loop.create_future(), conn.peer, module, function, len(args), io,
                   pid_ids, wpid, ref_ids, wref)
    table.calls[wpid] = proc
    conn.add_waiter(proc)
    if timeout is not None:
        proc.timeout = timeout
        proc.stop_on_timeout = stop_on_timeout
        d = proc.deadlines = node.deadlines(loop)
        d.add(timeout, proc)
    if len(pieces) > 1:
        node.spawn(_write_large(conn, pieces, proc))
    return proc


async def _write_large(conn: Connection, pieces: list, proc: RpcCall) -> None:
    try:
        await conn.write_large(pieces)
    except NodeDown as exc:
        proc._finish()
        if not proc.future.done():
            proc.future.set_exception(exc)


async def call(node: LocalNode, peer: str, module: str, function: str, args: Any = (), *,
               timeout: float | None = 30.0, io: Callable[[str], Any] | None = None,
               stop_on_timeout: bool = True) -> Any:
    """``module:function(*args)`` on ``peer`` through its ``rex`` server.

    Many calls may be in flight on one connection. Raises RpcError for a remote
    exception or ``{badrpc, R}`` (``.reason`` is R, the message shows it in Erlang
    syntax), RpcTimeout after ``timeout`` seconds (a positive number, or None for
    no limit), NodeDown at once if the connection goes. On timeout the call is
    killed on the node before RpcTimeout is raised (``stop_on_timeout``), as erpc
    does. The call's io output (io:format in the called code) goes to ``io``
    (default: the node's ``io_sink``).
    """
    if type(args) is not list:
        args = list(args)
    if timeout is not None and not 0 < timeout < _INF:
        check_timeout(timeout)
    conn = node.connection(peer)
    if conn is None:
        conn = await node.connect(peer)
    proc = start_call(node, conn, module, function, args, timeout, io, stop_on_timeout)
    try:
        if conn._protocol.paused:
            await conn.drain()
        elif node.inline_wait and len(node.table.calls) == 1 and conn._wq is None:
            # the only call in flight on the node: read its reply right here, but
            # let the loop run at least every INLINE_SLICE seconds
            now = time.monotonic()
            if now - node.last_inline_yield < INLINE_SLICE:
                if conn.wait_inline(proc.future, INLINE_BUDGET):
                    return proc.future.result()
            node.last_inline_yield = now
        return await proc.future
    except asyncio.CancelledError:
        proc.close()
        raise
    except RpcTimeout:
        if proc.stopping is not None:
            # the error comes once the call is stopped on the node (bounded)
            await asyncio.wait((proc.stopping,), timeout=STOP_GRACE + 0.5)
        raise


def call_future(node: LocalNode, peer: str, module: str, function: str, args: Any = (), *,
                timeout: float | None = 30.0, io: Callable[[str], Any] | None = None) -> asyncio.Future:
    """Like :func:`call` but returns the future at once (no Task per call).

    ``await asyncio.gather(*(node.rpc_future(...) for ...))`` keeps many calls in
    flight cheaply. Needs a running event loop; connects first if needed.
    """
    if type(args) is not list:
        args = list(args)
    if timeout is not None and not 0 < timeout < _INF:
        check_timeout(timeout)
    conn = node.connection(peer)
    if conn is None:
        return asyncio.ensure_future(call(node, peer, module, function, args, timeout=timeout, io=io))
    return start_call(node, conn, module, function, args, timeout, io).future


_INF = float("inf")

async def stop_calls_led_by(node: LocalNode, peer: str, leader: Pid) -> None:
    """Kill the processes on ``peer`` whose group leader is our pid ``leader``."""
    from ..remote_eval import eval_erlang

    def rpc(n: str, m: str, f: str, a: Any = (), **kw: Any) -> Any:
        kw["timeout"] = STOP_GRACE
        return call(node, n, m, f, a, stop_on_timeout=False, **kw)

    try:
        async with asyncio.timeout(STOP_GRACE):  # all the steps together, not each
            await eval_erlang(rpc, peer, STOP_SOURCE, {"Leader": leader})
    except Exception as exc:  # the node may be gone or busy; the timeout is reported anyway
        log.debug("could not stop the timed-out call on %s: %s", peer, exc)


