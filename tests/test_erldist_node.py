"""Processes on our hidden node talking to processes on real nodes:
send/receive, registered names, monitors both ways, links, selective receive."""

from __future__ import annotations

import asyncio

import pytest

from pyrlang_deploy.errors import MailboxClosed, ReceiveTimeout
from pyrlang_deploy.term import Atom, Pid, Reference
from tests.support.nodes import erl_eval

ECHO = """
    P = spawn(fun Loop() ->
            receive
                {echo, From, Msg} -> From ! {reply, self(), Msg}, Loop();
                stop -> ok
            end
        end),
    register(Name, P),
    P."""


async def test_send_to_a_registered_process_and_receive(pair):
    node, t = pair
    echo = await erl_eval(node, t.node, ECHO, {"Name": Atom("echo")})
    assert isinstance(echo, Pid)
    async with node.mailbox() as mb:
        await node.send((Atom("echo"), t.node), (Atom("echo"), mb.pid, "héllo"))
        assert await mb.receive(timeout=5) == (Atom("reply"), echo, "héllo")
        # and straight to the pid, with the mailbox as sender
        await mb.send(echo, (Atom("echo"), mb.pid, b"\x00bin"))
        assert await mb.receive(timeout=5) == ("reply", echo, b"\x00bin")


async def test_a_remote_process_sends_to_our_registered_name(pair):
    node, t = pair
    async with node.mailbox("inbox") as mb:
        assert node.whereis("inbox") == mb.pid
        await erl_eval(node, t.node, "{inbox, Me} ! {hi, node()}, ok.", {"Me": Atom(node.name)})
        assert await mb.receive(timeout=5) == ("hi", t.node)
    assert node.whereis("inbox") is None


async def test_selective_receive_keeps_the_rest_in_order(pair):
    node, t = pair
    async with node.mailbox() as mb:
        await erl_eval(node, t.node, "[Me ! {n, I} || I <- lists:seq(1, 5)], ok.", {"Me": mb.pid})
        assert await mb.receive(lambda m: m[1] == 3, timeout=5) == ("n", 3)
        assert [await mb.receive(timeout=5) for _ in range(4)] == [("n", 1), ("n", 2), ("n", 4), ("n", 5)]
        with pytest.raises(ReceiveTimeout):
            await mb.receive(timeout=0.1)
        # a receiver waiting for something specific is not woken by other messages
        waiter = asyncio.ensure_future(mb.receive(lambda m: m == "wanted", timeout=5))
        await node.send(mb.pid, "other")
        await node.send(mb.pid, "wanted")
        assert await waiter == "wanted" and mb.receive_nowait() == "other"
        # a predicate that cannot handle a message (1[0] raises) just does not match it
        await node.send(mb.pid, 1)
        with pytest.raises(ReceiveTimeout):
            await mb.receive(lambda m: m[0] == "x", timeout=0.1)
        assert mb.receive_nowait() == 1


async def test_monitor_a_remote_process_and_get_down(pair):
    node, t = pair
    echo = await erl_eval(node, t.node, ECHO, {"Name": Atom("echo2")})
    async with node.mailbox() as mb:
        ref = await mb.monitor(echo)
        assert isinstance(ref, Reference)
        await node.send(echo, Atom("stop"))
        assert await mb.receive(timeout=5) == (Atom("DOWN"), ref, Atom("process"), echo, Atom("normal"))
        # a dead pid: DOWN noproc at once
        ref2 = await mb.monitor(echo)
        assert await mb.receive(timeout=5) == ("DOWN", ref2, "process", echo, "noproc")


async def test_monitor_by_name_and_demonitor(pair):
    node, t = pair
    await erl_eval(node, t.node, ECHO, {"Name": Atom("named")})
    async with node.mailbox() as mb:
        ref = await mb.monitor(("named", t.node))
        await node.send(("named", t.node), Atom("stop"))
        assert await mb.receive(timeout=5) == ("DOWN", ref, "process", (Atom("named"), t.node), "normal")
        echo = await erl_eval(node, t.node, ECHO, {"Name": Atom("named")})
        ref = await mb.monitor(echo)
        await mb.demonitor(ref)
        await node.send(echo, Atom("stop"))
        with pytest.raises(ReceiveTimeout):
            await mb.receive(timeout=0.3)


async def test_down_noconnection_when_the_node_dies(pair):
    node, t = pair
    echo = await erl_eval(node, t.node, ECHO, {"Name": Atom("echo3")})
    async with node.mailbox() as mb:
        ref = await mb.monitor(echo)
        t.kill()
        assert await mb.receive(timeout=5) == ("DOWN", ref, "process", echo, "noconnection")


async def test_remote_monitor_of_our_mailbox(pair):
    node, t = pair
    async with node.mailbox() as reply:
        mb = node.mailbox()
        await erl_eval(node, t.node, """
            spawn(fun() -> R = erlang:monitor(process, Watched),
                           Back ! ready,
                           receive {'DOWN', R, process, Who, Why} -> Back ! {down, Who, Why}
                           after 5000 -> Back ! timeout end end), ok.""",
                       {"Watched": mb.pid, "Back": reply.pid})
        assert await reply.receive(timeout=5) == "ready"
        await asyncio.sleep(0.1)
        mb.close(Atom("bye"))
        assert await reply.receive(timeout=5) == ("down", mb.pid, "bye")
        # monitoring a pid of ours that does not exist: noproc
        ghost = node.mailbox()
        ghost.close()
        await erl_eval(node, t.node, """
            R = erlang:monitor(process, Ghost),
            receive {'DOWN', R, process, _, Why} -> Back ! {ghost, Why} after 5000 -> Back ! timeout end,
            ok.""", {"Ghost": ghost.pid, "Back": reply.pid})
        assert await reply.receive(timeout=5) == ("ghost", "noproc")


async def test_links_both_ways(pair):
    node, t = pair
    async with node.mailbox() as reply:
        mb = node.mailbox()
        await erl_eval(node, t.node, """
            spawn(fun() -> process_flag(trap_exit, true), link(Peer), Back ! {linked, self()},
                           receive {'EXIT', Peer, Why} -> Back ! {exit, Why}
                           after 5000 -> Back ! timeout end end), ok.""",
                       {"Peer": mb.pid, "Back": reply.pid})
        tag, remote = await reply.receive(timeout=5)
        assert tag == "linked"
        await asyncio.sleep(0.1)
        assert remote in mb.links
        mb.close(Atom("shutdown"))
        assert await reply.receive(timeout=5) == ("exit", "shutdown")

        # a linked remote process that dies sends us an exit signal, which we receive as a message
        mb2 = node.mailbox()
        victim = await erl_eval(node, t.node, """
            spawn(fun() -> link(Peer), receive die -> exit(crashed) end end).""", {"Peer": mb2.pid})
        await asyncio.sleep(0.1)
        await node.send(victim, Atom("die"))
        assert await mb2.receive(timeout=5) == ("EXIT", victim, "crashed")
        assert not mb2.links

        # unlink from the remote side (UNLINK_ID, acknowledged by us)
        mb3 = node.mailbox()
        p = await erl_eval(node, t.node, """
            spawn(fun() -> link(Peer), Back ! linked, receive unlink -> unlink(Peer), Back ! unlinked end,
                           receive die -> exit(crashed) end end).""", {"Peer": mb3.pid, "Back": reply.pid})
        assert await reply.receive(timeout=5) == "linked"
        await node.send(p, Atom("unlink"))
        assert await reply.receive(timeout=5) == "unlinked"
        await node.send(p, Atom("die"))
        with pytest.raises(ReceiveTimeout):
            await mb3.receive(timeout=0.3)
        mb3.close()


async def test_exit2_arrives_as_a_message(pair):
    node, t = pair
    async with node.mailbox() as mb:
        sender = await erl_eval(node, t.node, "exit(Peer, please), self().", {"Peer": mb.pid})
        msg = await mb.receive(timeout=5)
        assert msg[0] == "EXIT" and msg[2] == "please"
        assert msg[1].node == sender.node


async def test_closed_mailbox_fails_its_receivers(pair):
    node, _ = pair
    mb = node.mailbox()
    waiter = asyncio.ensure_future(mb.receive(timeout=5))
    await asyncio.sleep(0)
    mb.close()
    with pytest.raises(MailboxClosed):
        await waiter
    with pytest.raises(MailboxClosed):
        await mb.receive(timeout=1)


async def test_local_send_and_local_monitor(pair):
    node, _ = pair
    a, b = node.mailbox(), node.mailbox("b")
    await node.send(b.pid, 1)
    await node.send("b", 2)
    await node.send(("b", node.name), 3)
    assert [b.receive_nowait() for _ in range(3)] == [1, 2, 3]
    ref = await a.monitor(b.pid)
    b.close()
    assert await a.receive(timeout=1) == ("DOWN", ref, "process", b.pid, "normal")
    a.close()


async def test_alias_send(pair):
    node, t = pair
    async with node.mailbox() as mb:
        alias = mb.alias()
        await erl_eval(node, t.node, "erlang:send(Alias, {via, alias}), ok.", {"Alias": alias})
        assert await mb.receive(timeout=5) == ("via", "alias")
    assert alias not in node.table.aliases


async def test_receive_tied_to_a_peer_fails_when_it_goes(pair):
    from pyrlang_deploy.errors import NodeDown

    node, t = pair
    async with node.mailbox() as mb:
        waiting = asyncio.ensure_future(mb.receive(timeout=10, peer=t.node))
        await asyncio.sleep(0.1)
        t.kill()
        with pytest.raises(NodeDown) as e:
            await asyncio.wait_for(waiting, 5)
        assert str(e.value).startswith(f"connection to {t.node} lost")
        with pytest.raises(NodeDown):
            await mb.receive(timeout=1, peer=t.node)
