"""Connecting the hidden node to real OTP nodes: names, cookies, epmd, hiddenness."""

from __future__ import annotations

import asyncio

import pytest

from pyrlang_deploy.erldist.node import LocalNode
from pyrlang_deploy.erldist.process import Mailbox
from pyrlang_deploy.errors import CookieRejected, EpmdUnreachable, NodeNotFound
from pyrlang_deploy.term import Atom
from tests.support.nodes import erl_eval, free_port


@pytest.mark.parametrize("long", [True, False], ids=["long", "short"])
async def test_handshake_and_rpc(erl_node, epmd, long):
    target = erl_node(long=long)
    async with LocalNode(cookie=target.cookie, epmd_port=epmd.port) as node:
        conn = await node.connect(target.node)
        assert node.is_connected(target.node)
        assert ("." in node.name.split("@")[1]) == long  # our name takes the peer's form
        assert await node.rpc(target.node, "erlang", "node", []) == target.node
        assert conn.peer_creation > 0


async def test_controller_is_hidden(erl_node, epmd):
    target = erl_node()
    async with LocalNode(cookie=target.cookie, epmd_port=epmd.port) as node:
        await node.connect(target.node)
        assert await node.rpc(target.node, "erlang", "nodes", []) == []
        hidden = await node.rpc(target.node, "erlang", "nodes", [Atom("hidden")])
        assert hidden == [node.name]
        # and not registered with epmd: hidden clients need no port
        assert node.name.split("@")[0] not in epmd.names()


async def test_wrong_cookie_is_rejected(erl_node, epmd):
    target = erl_node()
    async with LocalNode(cookie="not-the-cookie", epmd_port=epmd.port) as node:
        with pytest.raises(CookieRejected) as e:
            await node.connect(target.node, timeout=10)
    assert str(e.value) == f"cookie rejected by {target.node}"
    assert "not-the-cookie" not in str(e.value)
    assert e.value.exit_code == 3


async def test_unknown_node_lists_what_epmd_knows(erl_node, epmd):
    a = erl_node()
    c = erl_node()
    host = "127.0.0.1"
    async with LocalNode(cookie=a.cookie, epmd_port=epmd.port) as node:
        with pytest.raises(NodeNotFound) as e:
            await node.connect(f"nobody@{host}")
    known = ", ".join(sorted([a.alive, c.alive]))
    assert str(e.value) == f"no node named nobody on {host} (epmd knows: {known})"


async def test_epmd_not_running():
    port = free_port()
    async with LocalNode(cookie="x", epmd_port=port) as node:
        with pytest.raises(EpmdUnreachable) as e:
            await node.connect("a@127.0.0.1")
    assert str(e.value).startswith(f"epmd not reachable on 127.0.0.1:{port}")


async def test_epmd_port_from_environment(erl_node, epmd, monkeypatch):
    target = erl_node()
    monkeypatch.setenv("ERL_EPMD_PORT", str(epmd.port))
    async with LocalNode(cookie=target.cookie) as node:
        assert await node.rpc(target.node, "erlang", "node", []) == target.node


async def test_concurrent_connects_share_one_attempt(erl_node, epmd):
    target = erl_node()
    async with LocalNode(cookie=target.cookie, epmd_port=epmd.port) as node:
        conns = await asyncio.gather(*(node.connect(target.node) for _ in range(10)))
        assert all(c is conns[0] for c in conns)
        assert await node.connect(target.node) is conns[0]
        # exactly one connection from us on the target
        assert await node.rpc(target.node, "erlang", "nodes", [Atom("hidden")]) == [node.name]


async def test_disconnect_and_reconnect(erl_node, epmd):
    target = erl_node()
    async with LocalNode(cookie=target.cookie, epmd_port=epmd.port) as node:
        first = await node.connect(target.node)
        await node.disconnect(target.node)
        assert not node.is_connected(target.node) and first.closed
        assert await node.rpc(target.node, "erlang", "node", []) == target.node
        assert node.is_connected(target.node)


async def test_one_creation_for_handshake_and_pids(erl_node, epmd):
    """A remote monitor on our mailbox sees it alive (a pid with a creation other
    than the handshake's would be dead on arrival) and gets DOWN when it closes."""
    target = erl_node()
    async with LocalNode(cookie=target.cookie, epmd_port=epmd.port) as node:
        await node.connect(target.node)
        mb = node.mailbox()
        assert mb.pid.creation == node.creation
        reply = node.mailbox()
        await erl_eval(node, target.node, """
            spawn(fun() -> R = erlang:monitor(process, Watched),
                           receive {'DOWN', R, process, _, Why} -> Back ! {down, Why}
                           after 5000 -> Back ! timeout end end),
            ok.""", {"Watched": mb.pid, "Back": reply.pid})
        await asyncio.sleep(0.2)
        assert len(reply) == 0  # not DOWN(noproc) at once: the pid is recognised as alive
        mb.close()
        assert await reply.receive(timeout=5) == ("down", "normal")


async def test_name_given_without_host_takes_the_peer_form(erl_node, epmd):
    target = erl_node(long=False)
    async with LocalNode("mycontroller", cookie=target.cookie, epmd_port=epmd.port) as node:
        await node.connect(target.node)
        alive, host = node.name.split("@")
        assert alive == "mycontroller" and "." not in host


async def test_close_fails_waiters_and_refuses_new_connects(erl_node, epmd):
    target = erl_node()
    node = LocalNode(cookie=target.cookie, epmd_port=epmd.port)
    await node.connect(target.node)
    call = asyncio.ensure_future(node.rpc(target.node, "timer", "sleep", [5000]))
    await asyncio.sleep(0.1)
    await node.close()
    with pytest.raises(Exception) as e:
        await asyncio.wait_for(call, 2)
    assert target.node in str(e.value)
    assert isinstance(node.mailbox(), Mailbox)  # still usable locally, just not connected
