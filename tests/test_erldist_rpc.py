"""RPC through rex against real nodes: results, errors, timeouts, node death, io, concurrency."""

from __future__ import annotations

import asyncio
import time

import pytest

from pyrlang_deploy.erldist.node import LocalNode
from pyrlang_deploy.errors import NodeDown, RpcError, RpcTimeout
from pyrlang_deploy.term import Atom


async def test_values_round_trip(pair):
    node, t = pair
    assert await node.rpc(t.node, "erlang", "abs", [-5]) == 5
    assert await node.rpc(t.node, "lists", "reverse", [[1, 2, 3]]) == [3, 2, 1]
    assert await node.rpc(t.node, "erlang", "list_to_binary", ["héllo"]) == b"h\xe9llo"
    assert await node.rpc(t.node, "unicode", "characters_to_binary", ["héllo"]) == "héllo".encode()
    assert await node.rpc(t.node, "erlang", "binary_to_list", [b"abc"]) == "abc"
    assert await node.rpc(t.node, "erlang", "element", [2, (Atom("a"), {"k": 1.5})]) == {"k": 1.5}
    assert await node.rpc(t.node, "erlang", "self", []) is not None
    # io is not involved in a plain call; the default arguments work
    assert await node.rpc(t.node, "erlang", "node") == t.node


async def test_remote_exception_is_an_rpc_error_with_the_reason(pair):
    node, t = pair
    with pytest.raises(RpcError) as e:
        await node.rpc(t.node, "erlang", "error", [Atom("badarith")])
    err = e.value
    assert type(err) is RpcError and err.node == t.node
    assert err.reason[0] == "EXIT" and err.reason[1][0] == "badarith"
    msg = str(err)
    assert msg.startswith(f"{t.node}: erlang:error/1 failed: {{'EXIT',{{badarith,")
    assert "\n" not in msg


async def test_undefined_function(pair):
    node, t = pair
    with pytest.raises(RpcError) as e:
        await node.rpc(t.node, "no_such_module", "f", [1])
    assert e.value.reason[1][0] == "undef"
    assert "no_such_module:f/1 failed" in str(e.value)


async def test_timeout_then_the_connection_still_works(pair):
    node, t = pair
    t0 = time.monotonic()
    with pytest.raises(RpcTimeout) as e:
        await node.rpc(t.node, "timer", "sleep", [3000], timeout=0.3)
    assert 0.25 < time.monotonic() - t0 < 2
    assert str(e.value) == f"{t.node}: timer:sleep/1 timed out after 0.3s"
    assert e.value.reason == "timeout"
    assert await node.rpc(t.node, "erlang", "node", []) == t.node


async def test_node_killed_during_a_call_fails_at_once(pair):
    node, t = pair
    call = asyncio.ensure_future(node.rpc(t.node, "timer", "sleep", [10000]))
    other = asyncio.ensure_future(node.rpc(t.node, "timer", "sleep", [10000]))
    await asyncio.sleep(0.3)
    t0 = time.monotonic()
    t.kill()
    for fut in (call, other):
        with pytest.raises(NodeDown) as e:
            await asyncio.wait_for(fut, 5)
        assert str(e.value).startswith(f"{t.node} went down during the call")
    assert time.monotonic() - t0 < 2
    assert not node.is_connected(t.node)


async def test_200_calls_in_flight(pair):
    node, t = pair
    results = await asyncio.wait_for(
        asyncio.gather(*(node.rpc(t.node, "erlang", "abs", [-i]) for i in range(200))), 30)
    assert results == list(range(200))
    futs = [node.rpc_future(t.node, "erlang", "abs", [-i]) for i in range(200)]
    assert await asyncio.wait_for(asyncio.gather(*futs), 30) == list(range(200))
    assert not node.table.calls  # every call left the pid table


async def test_mixed_outcomes_in_flight(pair):
    node, t = pair
    res = await asyncio.gather(
        node.rpc(t.node, "timer", "sleep", [200]),
        node.rpc(t.node, "erlang", "error", [Atom("x")]),
        node.rpc(t.node, "timer", "sleep", [2000], timeout=0.2),
        node.rpc(t.node, "erlang", "node", []),
        return_exceptions=True)
    assert res[0] == "ok" and isinstance(res[1], RpcError) and isinstance(res[2], RpcTimeout)
    assert res[3] == t.node


async def test_io_format_output_reaches_the_caller(pair):
    node, t = pair
    out: list[str] = []
    r = await node.rpc(t.node, "io", "format", ["héllo ~p~n", [Atom("x")]], io=out.append)
    assert r == "ok"
    assert "".join(out) == "héllo x\n"


async def test_io_forms(pair):
    node, t = pair
    out: list[str] = []
    # put_chars with a binary (unicode), latin-1 io, a list of requests, and input (eof)
    assert await node.rpc(t.node, "io", "put_chars", ["a€\n".encode()], io=out.append) == "ok"
    assert await node.rpc(t.node, "io", "put_chars", [Atom("standard_io"), "b\n"], io=out.append) == "ok"
    assert await node.rpc(t.node, "io", "fwrite", ["~s|~w~n", ["c", 1]], io=out.append) == "ok"
    assert await node.rpc(t.node, "io", "get_line", ["prompt> "], io=out.append) == "eof"
    assert await node.rpc(t.node, "io", "getopts", [], io=out.append) == [
        (Atom("binary"), False), (Atom("encoding"), Atom("unicode"))]
    assert (await node.rpc(t.node, "io", "columns", [], io=out.append))[0] == "error"
    assert await node.rpc(t.node, "io", "nl", [], io=out.append) == "ok"
    latin1 = (Atom("put_chars"), Atom("latin1"), b"h\xe9\n")
    assert await node.rpc(t.node, "io", "request", [Atom("standard_io"), latin1], io=out.append) == "ok"
    assert "".join(out) == "a€\nb\nc|1\n\nhé\n"


async def test_io_goes_to_each_calls_own_sink(pair):
    node, t = pair
    sinks: dict[int, list[str]] = {i: [] for i in range(20)}
    await asyncio.gather(*(node.rpc(t.node, "io", "format", ["call ~p~n", [i]], io=sinks[i].append)
                           for i in range(20)))
    assert all("".join(s) == f"call {i}\n" for i, s in sinks.items())


async def test_default_io_sink(erl_node, epmd):
    t = erl_node()
    seen: list[str] = []
    async with LocalNode(cookie=t.cookie, epmd_port=epmd.port, io_sink=seen.append) as node:
        await node.rpc(t.node, "io", "format", ["x~n"])
    assert seen == ["x\n"]


async def test_large_binary_argument(pair):
    node, t = pair
    data = bytes(range(256)) * 4096 * 5  # 5 MiB, sent from our buffer without a copy
    assert await node.rpc(t.node, "erlang", "byte_size", [data]) == len(data)
    assert await node.rpc(t.node, "erlang", "md5", [data]) == __import__("hashlib").md5(data).digest()
    # a big argument between small ones keeps the argument order
    got = await node.rpc(t.node, "erlang", "setelement", [2, (1, 2, 3), data])
    assert got == (1, data, 3)
    # and a big reply comes back intact
    assert await node.rpc(t.node, "binary", "copy", [b"ab", 1 << 20]) == b"ab" * (1 << 20)


async def test_calls_while_a_large_write_streams_keep_their_frames_whole(pair):
    node, t = pair
    data = b"\x01" * (16 << 20)
    big = asyncio.ensure_future(node.rpc(t.node, "erlang", "byte_size", [data]))
    small = [node.rpc(t.node, "erlang", "abs", [-i]) for i in range(50)]
    assert await asyncio.gather(*small) == list(range(50))
    assert await big == len(data)


async def test_rpc_connects_on_demand(erl_node, epmd):
    t = erl_node()
    async with LocalNode(cookie=t.cookie, epmd_port=epmd.port) as node:
        assert await node.rpc(t.node, "erlang", "node", []) == t.node
        assert await node.rpc_future(t.node, "erlang", "abs", [-1]) == 1


async def test_cancelled_call_leaves_nothing_behind(pair):
    node, t = pair
    call = asyncio.ensure_future(node.rpc(t.node, "timer", "sleep", [2000]))
    await asyncio.sleep(0.1)
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    assert not node.table.calls
    assert await node.rpc(t.node, "erlang", "node", []) == t.node


async def test_io_requests_batch_with_formatting(pair):
    node, t = pair
    out: list[str] = []
    reqs = (Atom("requests"), [(Atom("put_chars"), Atom("unicode"), "a"),
                               (Atom("put_chars"), Atom("unicode"), Atom("io_lib"), Atom("format"), ["~p", [[1]]]),
                               (Atom("put_chars"), Atom("unicode"), b"\n")])
    assert await node.rpc(t.node, "io", "request", [Atom("standard_io"), reqs], io=out.append) == "ok"
    assert "".join(out) == "a[1]\n"


async def test_io_from_a_process_spawned_by_the_call(pair):
    """A process the call spawns inherits our group leader; its output still arrives."""
    from tests.support.nodes import erl_eval

    node, t = pair
    out: list[str] = []
    await node.rpc(t.node, "erlang", "spawn", [Atom("io"), Atom("format"), ["late ~p~n", [1]]], io=out.append)
    deadline = asyncio.get_running_loop().time() + 3
    while not out and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.05)
    # the call had finished: its pid is gone, so the late writer gets an error, not a hang
    assert out == [] or out == ["late 1\n"]
    assert await erl_eval(node, t.node, "ok.") == "ok"
