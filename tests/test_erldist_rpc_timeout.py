"""A timed-out call stops on the node (issue 10), as erpc's does: in the CLI, the
API and the REPL. Read back with erl_call: no process of the call is left."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time

import pytest

from pyrlang_deploy.erldist.node import LocalNode
from pyrlang_deploy.errors import RpcTimeout
from pyrlang_deploy.term import Atom
from tests.support.nodes import require

SLEEPERS = ("length([P || P <- erlang:processes(), "
            "erlang:process_info(P, current_function) =:= {current_function, {timer, sleep, 1}}]).")


def sleepers(node) -> int:
    """How many processes on ``node`` sit in timer:sleep/1, asked with erl_call (not erldeploy)."""
    p = subprocess.run([require("erl_call"), "-c", node.cookie, "-name" if node.long else "-sname", node.node,
                        "-e"], input=SLEEPERS + "\n", capture_output=True, text=True, timeout=30,
                       env={**os.environ, "ERL_EPMD_PORT": str(node.epmd.port)})
    assert p.returncode == 0, p.stderr
    return int(p.stdout.strip().removeprefix("{ok,").removesuffix("}"))


def wait_for_sleepers(node, n: int, within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    while sleepers(node) != n:
        assert time.monotonic() < deadline, f"expected {n} sleeping process(es) on {node.node}"
        time.sleep(0.05)


@pytest.mark.parametrize("driver", ["blocking", "asyncio"])
def test_cli_rpc_timeout_kills_the_call_on_the_node(erl_node, driver):
    n = erl_node()
    env = {k: v for k, v in os.environ.items() if k != "ERLDEPLOY_NO_FAST"}
    env.update({"ERLDEPLOY_COOKIE": n.cookie, "ERL_EPMD_PORT": str(n.epmd.port), "HOME": "/nonexistent"})
    if driver == "asyncio":
        env["ERLDEPLOY_NO_FAST"] = "1"  # the click path, on LocalNode
    t0 = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "pyrlang_deploy.cli.main", "rpc", "-n", n.node,
                             "--timeout", "2", "timer", "sleep", "600000"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        wait_for_sleepers(n, 1)  # the call runs on the node (so this test can fail)
        out, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    wall = time.monotonic() - t0
    assert proc.returncode == 1, err
    assert err.strip() == f"erldeploy: error: {n.node}: timer:sleep/1 timed out after 2s", err
    assert sleepers(n) == 0  # stopped before the CLI said so
    assert wall < 2 + 8  # the stop takes milliseconds; the rest is start-up on a loaded machine


async def test_api_rpc_timeout_kills_the_call_and_what_it_started(erl_node):
    n = erl_node()
    async with LocalNode(cookie=n.cookie, epmd_port=n.epmd.port) as node:
        # rpc:call on the node itself: a second rex worker, which inherits our group leader
        nested = [Atom(n.node), Atom("timer"), Atom("sleep"), [600000]]
        t0 = time.monotonic()
        task = asyncio.ensure_future(node.rpc(n.node, "rpc", "call", nested, timeout=1.5))
        await asyncio.to_thread(wait_for_sleepers, n, 1)
        with pytest.raises(RpcTimeout) as e:
            await task
        assert time.monotonic() - t0 < 1.5 + 1.0  # stopped within a second of the timeout
        assert str(e.value) == f"{n.node}: rpc:call/4 timed out after 1.5s"
        assert await asyncio.to_thread(sleepers, n) == 0
        assert await node.rpc(n.node, "erlang", "node", []) == n.node  # the connection is fine


async def test_rpc_future_timeouts_are_stopped_before_the_node_closes(erl_node):
    n = erl_node()
    node = LocalNode(cookie=n.cookie, epmd_port=n.epmd.port)
    await node.connect(n.node)
    futs = [node.rpc_future(n.node, "timer", "sleep", [600000], timeout=0.5) for _ in range(5)]
    await asyncio.to_thread(wait_for_sleepers, n, 5)
    results = await asyncio.gather(*futs, return_exceptions=True)
    assert all(isinstance(r, RpcTimeout) for r in results)
    await node.close()  # lets the stops finish first
    assert await asyncio.to_thread(sleepers, n) == 0


async def test_repl_rpc_timeout_kills_the_call(erl_node):
    from pyrlang_deploy.cluster import Cluster
    from pyrlang_deploy.repl import _namespace

    n = erl_node()
    async with Cluster([n.node], cookie=n.cookie, epmd_port=n.epmd.port) as cluster:
        ns = _namespace(cluster)
        with pytest.raises(RpcTimeout):
            await ns["rpc"](n.node, "timer", "sleep", [600000], timeout=0.5)
        assert await asyncio.to_thread(sleepers, n) == 0


async def test_a_call_that_finishes_in_time_is_left_alone(erl_node):
    n = erl_node()
    async with LocalNode(cookie=n.cookie, epmd_port=n.epmd.port) as node:
        assert await node.rpc(n.node, "timer", "sleep", [100], timeout=5) == "ok"
        # the node still runs what other clients started
        other = asyncio.ensure_future(node.rpc(n.node, "timer", "sleep", [3000], timeout=10))
        await asyncio.to_thread(wait_for_sleepers, n, 1)
        with pytest.raises(RpcTimeout):
            await node.rpc(n.node, "timer", "sleep", [600000], timeout=0.5)
        assert await asyncio.to_thread(sleepers, n) == 1  # only the timed-out one was stopped
        assert await other == "ok"
