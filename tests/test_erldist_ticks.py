"""Ticks with the peer's net_ticktime: an idle connection stays up, a frozen peer is dropped."""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import time

from pyrlang_deploy.erldist.node import LocalNode
from pyrlang_deploy.errors import NodeDown
from pyrlang_deploy.term import Atom

TICK = 2  # seconds; OTP ticks every TICK/4 and drops a peer silent for ~TICK


async def _learned(conn, seconds: float = 5.0) -> None:
    deadline = time.monotonic() + seconds
    while not conn.tick_time_known:
        assert time.monotonic() < deadline, "net_ticktime was not learned"
        await asyncio.sleep(0.05)


async def test_idle_connection_survives_three_tick_times(erl_node, epmd):
    t = erl_node(net_ticktime=TICK)
    async with LocalNode(cookie=t.cookie, epmd_port=epmd.port) as node:
        conn = await node.connect(t.node)
        await _learned(conn)
        assert conn.tick_time == TICK  # learned from net_kernel:get_net_ticktime()
        await asyncio.sleep(3 * TICK + 0.5)  # no traffic from us but ticks
        assert node.is_connected(t.node) and not conn.closed
        assert await node.rpc(t.node, "erlang", "nodes", [Atom("hidden")]) == [node.name]


async def test_frozen_peer_is_detected_after_its_tick_time(erl_node, epmd):
    t = erl_node(net_ticktime=TICK)
    async with LocalNode(cookie=t.cookie, epmd_port=epmd.port) as node:
        conn = await node.connect(t.node)
        await _learned(conn)
        call = asyncio.ensure_future(node.rpc(t.node, "timer", "sleep", [60000], timeout=None))
        await asyncio.sleep(0.2)
        os.kill(t.pid, signal.SIGSTOP)  # socket stays open, nothing comes any more
        try:
            t0 = time.monotonic()
            try:
                await asyncio.wait_for(call, 3 * TICK)
            except NodeDown as e:
                assert "went down during the call" in str(e) and "net_ticktime" in str(e)
            else:
                raise AssertionError("the call returned from a frozen node")
            assert TICK * 0.9 <= time.monotonic() - t0 <= TICK * 1.25 + 1.0
        finally:
            os.kill(t.pid, signal.SIGCONT)


async def test_tick_time_given_by_the_caller_is_used(erl_node, epmd):
    t = erl_node(net_ticktime=TICK)
    async with LocalNode(cookie=t.cookie, epmd_port=epmd.port, net_ticktime=TICK) as node:
        conn = await node.connect(t.node)
        assert conn.tick_time == TICK and conn.tick_time_known
        await asyncio.sleep(2 * TICK)
        assert await node.rpc(t.node, "erlang", "node", []) == t.node


# --- the blocking driver (erldist/blocking.py): it does not ask the ticktime up front ---


def test_blocking_driver_drops_a_frozen_peer(erl_node, epmd):
    from pyrlang_deploy.erldist.blocking import BlockingNode

    t = erl_node(net_ticktime=TICK)
    node = BlockingNode(cookie=t.cookie, epmd_port=epmd.port, net_ticktime=TICK)
    assert node.call(t.node, "erlang", "node", []) == t.node
    pid = t.pid
    freeze = threading.Timer(0.3, lambda: os.kill(pid, signal.SIGSTOP))
    freeze.start()
    t0 = time.monotonic()
    try:
        try:
            node.call(t.node, "timer", "sleep", [60000], timeout=None)
        except NodeDown as e:
            assert "went down during the call" in str(e) and "net_ticktime" in str(e), str(e)
        else:
            raise AssertionError("the call returned from a frozen node")
        # silent for TICK, then asked, with TICK/4 to answer
        assert TICK * 0.9 <= time.monotonic() - t0 <= TICK * 1.25 + 1.5
    finally:
        freeze.cancel()
        os.kill(pid, signal.SIGCONT)


def test_blocking_driver_asks_a_quiet_peer_and_keeps_it(erl_node, epmd):
    """A node whose ticktime is longer than ours is silent longer than we expect: it is
    asked, answers, and the call (longer than our ticktime) completes."""
    from pyrlang_deploy.erldist.blocking import BlockingNode

    t = erl_node(net_ticktime=4 * TICK)           # it ticks every 2 s
    node = BlockingNode(cookie=t.cookie, epmd_port=epmd.port, net_ticktime=TICK / 2)  # we expect 1 s
    assert node.call(t.node, "timer", "sleep", [int(3.5 * TICK * 1000)], timeout=30) == "ok"
    conn = node.connection(t.node)
    assert conn is not None and not conn.closed and conn._silence_limit == 1.25 * 4 * TICK
