"""Reaching nodes without epmd and over IPv6, and the OTP 28 flag/op, against real nodes.

Runs on OTP 25 (Debian's erl) and, with ERLDEPLOY_TEST_ERL, on the OTP 28 runtime
(scripts/test_otp28): nothing here needs sasl or ssl.
"""

from __future__ import annotations

import os
import subprocess

import pytest

from pyrlang_deploy.cluster import Cluster
from pyrlang_deploy.erldist.address import Target, parse_target
from pyrlang_deploy.erldist.carrier import Reach
from pyrlang_deploy.erldist.flags import CLIENT_FLAGS, DFlag
from pyrlang_deploy.erldist.node import LocalNode
from pyrlang_deploy.errors import ConnectError, UsageError
from pyrlang_deploy.term import Atom
from tests.support.nodes import ErlNode, erl_eval, erl_program, free_port


@pytest.fixture(scope="module")
def otp_release() -> int:
    out = subprocess.run([erl_program(), "-noshell", "-eval",
                          'io:format("~s", [erlang:system_info(otp_release)]), halt().'],
                         capture_output=True, text=True, timeout=60)
    return int(out.stdout.strip())


def test_the_expected_otp_runs(otp_release):
    # scripts/test_otp28 sets ERLDEPLOY_TEST_OTP: a wrong wrapper must not pass as OTP 28
    assert otp_release == int(os.environ.get("ERLDEPLOY_TEST_OTP", otp_release))
    assert otp_release >= 25


@pytest.mark.parametrize("text, target", [
    ("a@h", Target("a@h")),
    ("a@10.0.0.5:9100", Target("a@10.0.0.5", 9100)),
    ("a@host.example:1", Target("a@host.example", 1)),
    ("a@[::1]:9100", Target("a@::1", 9100)),
    ("a@[::1]", Target("a@::1")),
    ("a@::1", Target("a@::1")),
    ("a@fe80::1:2", Target("a@fe80::1:2")),
])
def test_targets_parse(text, target):
    assert parse_target(text) == target


@pytest.mark.parametrize("text", ["a@h:0", "a@h:70000", "a@h:x", "a@[::1", "a@[::1]x", "@h", "a@"])
def test_bad_targets_are_usage_errors(text):
    with pytest.raises(UsageError):
        parse_target(text)


def test_altact_sig_is_named_and_offered_with_its_op():
    # values from OTP 28's dist.hrl / dist.h
    assert DFlag.ALTACT_SIG == 0x20 << 32 and CLIENT_FLAGS & DFlag.ALTACT_SIG
    assert not CLIENT_FLAGS & DFlag.LOCAL_EXT
    from pyrlang_deploy.erldist import control as ctl
    assert ctl.CONTROL_TYPES[37] is ctl.AltactSigSend


def _epmdless(epmd, port: int, host: str = "127.0.0.1", **kw) -> ErlNode:
    # -start_epmd false: no epmd at all; the node listens on `port` and assumes every
    # other node does too (erl_epmd:port_please answers it without asking epmd).
    # mix releases' ERL_DIST_PORT=P is this pair of flags.
    args = ["-start_epmd", "false", "-erl_epmd_port", str(port),
            "-kernel", "inet_dist_use_interface", "{" + host.replace(".", ",") + "}"]
    return ErlNode(epmd, host=host, args=args, listen_port=port, **kw)


async def test_epmdless_node_by_port_and_by_cluster_rule(epmd, tmp_path):
    port = free_port()
    epmd.stop()  # nothing may lean on an epmd here
    node = _epmdless(epmd, port).start(log_dir=tmp_path)
    try:
        for reach in (Reach(ports={node.node: port}), Reach(dist_port=port)):
            async with LocalNode(cookie=node.cookie, reach=reach) as local:
                assert await local.rpc(node.node, "erlang", "node", []) == Atom(node.node)
        async with Cluster([f"{node.node}:{port}"], cookie=node.cookie) as c:  # the API takes NAME@HOST:PORT
            assert c.members == [node.node] and not c.unreachable
        async with LocalNode(cookie=node.cookie, reach=Reach(dist_port=free_port())) as local:
            with pytest.raises(ConnectError) as e:
                await local.connect(node.node, timeout=5)
            assert node.node in str(e.value) and "epmd not asked" in str(e.value)
    finally:
        node.kill()


async def test_cluster_discovery_without_epmd(epmd, tmp_path):
    # two hosts (loopback addresses) and one port: the epmd-less cluster's rule
    port = free_port()
    epmd.stop()
    a = _epmdless(epmd, port, "127.0.0.1").start(log_dir=tmp_path)
    b = _epmdless(epmd, port, "127.0.0.2", cookie=a.cookie).start(log_dir=tmp_path)
    try:
        async with LocalNode(cookie=a.cookie, reach=Reach(ports={a.node: port})) as local:
            assert await erl_eval(local, a.node, f"net_adm:ping('{b.node}').") == Atom("pong")
        for reach in (Reach(dist_port=port), Reach(ports={a.node: port})):  # the rule, or asked of a
            async with Cluster([a.node], cookie=a.cookie, discover=True, reach=reach) as c:
                assert sorted(c.members) == sorted([a.node, b.node]) and not c.unreachable
                res = await c.rpc_all("erlang", "node", [])
                assert {n: r.value for n, r in res.items()} == {a.node: Atom(a.node), b.node: Atom(b.node)}
    finally:
        a.kill()
        b.kill()


async def test_ipv6_node_on_loopback(erl_node, epmd):
    node = erl_node(host="::1", args=["-proto_dist", "inet6_tcp"])
    assert node.node.endswith("@::1")
    async with LocalNode(cookie=node.cookie, epmd_port=epmd.port) as local:
        assert await local.rpc(node.node, "erlang", "node", []) == Atom(node.node)
        # the node sees us over IPv6
        seen = await erl_eval(local, node.node, "{ok, [{_, I}]} = net_kernel:nodes_info(), "
                              "{address, A} = lists:keyfind(address, 1, I), "
                              "{element(1, element(2, A)), element(5, A)}.")
        assert seen == ((0, 0, 0, 0, 0, 0, 0, 1), Atom("inet6"))
        big = os.urandom(8 << 20)
        assert await local.rpc(node.node, "erlang", "byte_size", [big]) == len(big)


async def test_ipv6_epmdless_with_port_in_brackets(epmd, tmp_path):
    port = free_port()
    epmd.stop()
    node = ErlNode(epmd, host="::1", listen_port=port,
                   args=["-proto_dist", "inet6_tcp", "-start_epmd", "false", "-erl_epmd_port", str(port)])
    node.start(log_dir=tmp_path)
    try:
        t = parse_target(f"{node.alive}@[::1]:{port}")
        async with LocalNode(cookie=node.cookie, reach=Reach(ports={t.node: t.port})) as local:
            assert await local.rpc(t.node, "erlang", "node", []) == Atom(node.node)
    finally:
        node.kill()


async def test_alias_and_exit_via_alias_reach_a_mailbox(pair, otp_release):
    # on OTP 28 these arrive as ALTACT_SIG_SEND (op 37, flags ALIAS / ALIAS|EXIT), on 25-27 as ALIAS_SEND
    node, t = pair
    async with node.mailbox() as mb:
        alias = mb.alias()
        await erl_eval(node, t.node, "erlang:send(Alias, {via, alias}), ok.", {"Alias": alias})
        assert await mb.receive(timeout=5) == ("via", "alias")
        await erl_eval(node, t.node, "erlang:send(Pid, {by, pid}), ok.", {"Pid": mb.pid})
        assert await mb.receive(timeout=5) == ("by", "pid")
        if otp_release >= 28:  # exit/2 to an alias is new in 28
            await erl_eval(node, t.node, "exit(Alias, bye), ok.", {"Alias": alias})
            msg = await mb.receive(timeout=5)
            assert msg[0] == Atom("EXIT") and msg[2] == Atom("bye")


def test_cli_reaches_epmdless_nodes_by_port_option_env_and_toml(epmd, tmp_path):
    import sys

    port = free_port()
    epmd.stop()
    node = _epmdless(epmd, port).start(log_dir=tmp_path)
    try:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("ERLDEPLOY_", "ERL_DIST"))}
        env.update(ERLDEPLOY_COOKIE=node.cookie, HOME=str(tmp_path), ERL_EPMD_PORT=str(free_port()))
        proj, other = tmp_path / "proj", tmp_path / "other"
        proj.mkdir()
        other.mkdir()
        (proj / "erldeploy.toml").write_text(
            f'default_env = "k8s"\n[env.k8s]\nseeds = ["{node.node}"]\ndist_port = {port}\n')
        cases = [
            (["ping", "-n", f"{node.node}:{port}"], {}, other),
            (["ping", "-n", node.node, "--dist-port", str(port)], {}, other),
            (["ping", "-n", node.node], {"ERLDEPLOY_DIST_PORT": str(port)}, other),
            (["ping", "-n", node.node], {"ERL_DIST_PORT": str(port)}, other),  # mix release's variable
            (["nodes", "--cluster"], {}, proj),  # the toml's dist_port
        ]
        for args, extra, cwd in cases:
            p = subprocess.run([sys.executable, "-m", "pyrlang_deploy.cli.main", *args], capture_output=True,
                               text=True, env={**env, **extra}, cwd=cwd, timeout=60)
            assert p.returncode == 0 and node.node in p.stdout, (args, p.stdout, p.stderr)
        p = subprocess.run([sys.executable, "-m", "pyrlang_deploy.cli.main", "ping", "-n", node.node],
                           capture_output=True, text=True, env=env, cwd=other, timeout=60)
        assert p.returncode == 3 and len(p.stderr.strip().splitlines()) == 1 and "epmd" in p.stderr
    finally:
        node.kill()


def test_altact_sig_send_maps_to_the_older_op_of_the_same_meaning():
    from pyrlang_deploy.erldist import control as ctl

    p, ref, name = "PID", "REF", Atom("rex")
    cases = [(ctl.ALTACT_ALIAS, ref, ctl.AliasSend(p, ref)),
             (ctl.ALTACT_ALIAS | ctl.ALTACT_PRIO, ref, ctl.AliasSend(p, ref)),
             (ctl.ALTACT_NAME, name, ctl.RegSend(p, name)),
             (ctl.ALTACT_PRIO, p, ctl.SendSender(p, p)),
             (ctl.ALTACT_EXIT, p, ctl.PayloadExit2(p, p)),
             (ctl.ALTACT_EXIT | ctl.ALTACT_ALIAS, ref, None)]
    for flags, to, legacy in cases:
        c = ctl.parse((37, flags, p, to))
        assert isinstance(c, ctl.AltactSigSend) and c.legacy() == legacy
    assert ctl.parse((37, ctl.ALTACT_TOKEN, p, p, "token")).legacy() == ctl.SendSender(p, p)
