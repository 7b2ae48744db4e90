"""TLS distribution against real OTP nodes (-proto_dist inet_tls -ssl_dist_optfile),
with certificates made here by `openssl`: the API, the CLI options / env / toml, and
every refusal as one line, exit 3, naming the node and the cause."""

from __future__ import annotations

import asyncio
import hashlib
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest

from pyrlang_deploy.erldist import tls
from pyrlang_deploy.erldist.carrier import Reach
from pyrlang_deploy.erldist.node import LocalNode
from pyrlang_deploy.errors import UsageError
from pyrlang_deploy.term import Atom
from tests.support.nodes import Epmd, ErlNode, erl_eval
from tests.support.tls import Pki, tls_args


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """One epmd; a TLS node, a TLS node with an expired certificate, a plain node,
    and a TLS node on IPv6; all with one cookie."""
    base = tmp_path_factory.mktemp("tls")
    pki = Pki.make(base)
    optfile = pki.optfile(base / "dist.conf")
    expired_opt = pki.optfile(base / "expired.conf", node=pki.expired)
    tls13_opt = pki.optfile(base / "tls13.conf", versions="tlsv1.3")
    elsewhere_opt = pki.optfile(base / "elsewhere.conf", node=pki.elsewhere)
    epmd = Epmd().start()
    cookie = "tls" + os.urandom(6).hex()
    nodes = {
        "tls": ErlNode(epmd, cookie=cookie, args=tls_args(optfile)),
        "expired": ErlNode(epmd, cookie=cookie, args=tls_args(expired_opt)),
        # it reads a ClientHello as a handshake length and waits net_setuptime for the rest
        "plain": ErlNode(epmd, cookie=cookie, args=["-kernel", "net_setuptime", "2"]),
        "elsewhere": ErlNode(epmd, cookie=cookie, args=tls_args(elsewhere_opt)),
        # TLS 1.3: the node's verdict on our certificate comes after the TLS handshake
        "tls13": ErlNode(epmd, cookie=cookie, args=tls_args(tls13_opt)),
        "tls6": ErlNode(epmd, cookie=cookie, host="::1", args=tls_args(optfile, inet6=True)),
        # a short name: the SNI and the name checked are this host's name (a DNS SAN)
        "tls_short": ErlNode(epmd, cookie=cookie, long=False, args=tls_args(optfile)),
        "tls_short2": ErlNode(epmd, cookie=cookie, long=False, args=tls_args(optfile)),
    }
    try:
        with ThreadPoolExecutor(len(nodes)) as pool:  # boot them side by side
            list(pool.map(lambda n: n.start(log_dir=base), nodes.values()))
        yield {"pki": pki, "optfile": optfile, "epmd": epmd, "cookie": cookie, "base": base, **nodes}
    finally:
        for n in nodes.values():
            n.kill()
        epmd.stop()


def _cli(world, *args, env=None, cwd=None):
    e = {k: v for k, v in os.environ.items() if not k.startswith(("ERLDEPLOY_", "ERL_DIST"))}
    e.update({"ERLDEPLOY_COOKIE": world["cookie"], "ERL_EPMD_PORT": str(world["epmd"].port),
              "HOME": str(world["base"])}, **(env or {}))
    p = subprocess.run([sys.executable, "-m", "pyrlang_deploy.cli.main", *args], capture_output=True,
                       text=True, env=e, timeout=60, cwd=cwd or world["base"])
    out = p.stdout + p.stderr
    assert "Traceback" not in out and world["cookie"] not in out
    for key in (world["pki"].client.key, world["pki"].node.key):
        assert "PRIVATE KEY" not in out and key.read_text()[40:80] not in out
    return p


def _tls_flags(pki, cert=None, ca=None):
    cert = cert or pki.client
    return ["--tls-certfile", str(cert.cert), "--tls-keyfile", str(cert.key),
            "--tls-cacertfile", str(ca or pki.ca)]


async def test_api_over_tls_rpc_and_a_big_binary(world):
    node = world["tls"]
    reach = Reach(tls=tls.from_optfile(str(world["optfile"])))
    async with LocalNode(cookie=world["cookie"], epmd_port=world["epmd"].port, reach=reach) as local:
        assert await local.rpc(node.node, "erlang", "node", []) == Atom(node.node)
        big = os.urandom(16 << 20)
        assert await local.rpc(node.node, "erlang", "md5", [big]) == hashlib.md5(big).digest()
        # what the node says about our connection: TLS, and our certificate's subject
        proto = await erl_eval(local, node.node, "{ok, [{_, I}]} = net_kernel:nodes_info(), "
                               "{address, A} = lists:keyfind(address, 1, I), element(4, A).")
        assert proto == Atom("tls")


async def test_idle_tls_connection_lives_on_ticks(world, tmp_path):
    # ticks are empty {packet, 4} frames inside TLS, both ways
    node = ErlNode(world["epmd"], cookie=world["cookie"], net_ticktime=2, args=tls_args(world["optfile"]))
    node.start(log_dir=tmp_path)
    try:
        reach = Reach(tls=tls.from_optfile(str(world["optfile"])))
        async with LocalNode(cookie=world["cookie"], epmd_port=world["epmd"].port, reach=reach,
                             net_ticktime=2) as local:
            conn = await local.connect(node.node)
            await asyncio.sleep(3 * 2 + 0.5)
            assert not conn.closed
            assert await local.rpc(node.node, "erlang", "nodes", [Atom("hidden")]) == [local.name]
    finally:
        node.kill()


async def test_tls_over_ipv6(world):
    node = world["tls6"]
    reach = Reach(tls=tls.from_optfile(str(world["optfile"])))
    async with LocalNode(cookie=world["cookie"], epmd_port=world["epmd"].port, reach=reach) as local:
        assert await local.rpc(node.node, "erlang", "node", []) == Atom(node.node)
        fam = await erl_eval(local, node.node, "{ok, [{_, I}]} = net_kernel:nodes_info(), "
                             "{address, A} = lists:keyfind(address, 1, I), {element(4, A), element(1, element(2, A))}.")
        # (OTP 25's inet6_tls_dist labels the family inet; the address tells the truth)
        assert fam == (Atom("tls"), (0, 0, 0, 0, 0, 0, 0, 1))


def test_cli_ping_with_optfile_options_env_and_toml(world):
    pki, node = world["pki"], world["tls"].node
    for args, env in (
        (["--ssl-dist-optfile", str(world["optfile"])], {}),
        (_tls_flags(pki), {}),
        ([], {"ERLDEPLOY_TLS_CERTFILE": str(pki.client.cert), "ERLDEPLOY_TLS_KEYFILE": str(pki.client.key),
              "ERLDEPLOY_TLS_CACERTFILE": str(pki.ca)}),
        ([], {"ERLDEPLOY_SSL_DIST_OPTFILE": str(world["optfile"])}),
    ):
        p = _cli(world, "ping", "-n", node, *args, env=env)
        assert p.returncode == 0, p.stderr
        assert node in p.stdout
    proj = world["base"] / "proj"
    proj.mkdir(exist_ok=True)
    (proj / "erldeploy.toml").write_text(
        f'default_env = "prod"\n[env.prod]\nseeds = ["{node}"]\n'
        f'ssl_dist_optfile = "{world["optfile"]}"\n')
    p = _cli(world, "rpc", "erlang", "node", cwd=proj)
    assert p.returncode == 0 and node in p.stdout, p.stderr


@pytest.mark.parametrize("case", ["wrong_ca", "expired_server", "expired_client", "foreign_client",
                                  "no_client_cert", "plain_at_tls", "tls_at_plain", "tls13_ok",
                                  "tls13_expired_client", "tls13_foreign_client", "short_name_ok",
                                  "host_mismatch"])
def test_refusals_are_one_line_exit_3(world, case):
    pki = world["pki"]
    target, args, cause = {
        "wrong_ca": ("tls", _tls_flags(pki, ca=pki.foreign_ca), "its CA is not ours"),
        "expired_server": ("expired", _tls_flags(pki), "expired"),
        "expired_client": ("tls", _tls_flags(pki, cert=pki.expired), "rejected our client certificate: it has expired"),
        "foreign_client": ("tls", _tls_flags(pki, cert=pki.foreign), "rejected our client certificate: not signed"),
        "no_client_cert": ("tls", ["--tls-cacertfile", str(pki.ca)], "rejected our client certificate"),
        "plain_at_tls": ("tls", [], "speaks TLS"),
        "tls_at_plain": ("plain", _tls_flags(pki), "plain-TCP node"),
        "tls13_ok": ("tls13", _tls_flags(pki), None),
        "short_name_ok": ("tls_short", _tls_flags(pki), None),
        "host_mismatch": ("elsewhere", _tls_flags(pki), "does not name the node's host"),
        "tls13_expired_client": ("tls13", _tls_flags(pki, cert=pki.expired), "rejected our client certificate"),
        "tls13_foreign_client": ("tls13", _tls_flags(pki, cert=pki.foreign), "rejected our client certificate"),
    }[case]
    node = world[target].node
    p = _cli(world, "ping", "-n", node, "--timeout", "10", *args)
    if cause is None:
        assert p.returncode == 0 and node in p.stdout, p.stderr
        return
    assert p.returncode == 3, p.stdout + p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and node in lines[0] and cause in lines[0], lines


def test_cluster_discovery_over_tls(world):
    # two TLS nodes joined to each other (short names: OTP's own client checks a DNS name)
    a, b = world["tls_short"], world["tls_short2"]
    flags = ["--ssl-dist-optfile", str(world["optfile"])]
    p = _cli(world, "eval", "-n", a.node, f"net_adm:ping('{b.node}').", *flags)
    assert p.returncode == 0 and "pong" in p.stdout, p.stderr
    p = _cli(world, "ping", "--cluster", "-n", a.node, *flags)
    assert p.returncode == 0, p.stderr
    assert a.node in p.stdout and b.node in p.stdout


def test_optfile_settings_we_cannot_honour_are_warned_about(world, tmp_path):
    pki = world["pki"]
    opt = tmp_path / "odd.conf"
    opt.write_text(f'[{{client, [{{certfile, "{pki.client.cert}"}}, {{keyfile, "{pki.client.key}"}}, '
                   f'{{cacertfile, "{pki.ca}"}}, {{verify_fun, {{inet_tls_dist, verify_client, []}}}}]}}].')
    p = _cli(world, "ping", "-n", world["tls"].node, "--ssl-dist-optfile", str(opt))
    assert p.returncode == 0 and "warning" in p.stderr and "verify_fun ignored" in p.stderr


def test_bad_tls_files_are_usage_errors(world, tmp_path):
    pki = world["pki"]
    p = _cli(world, "ping", "-n", world["tls"].node, "--tls-certfile", str(pki.client.cert),
             "--tls-keyfile", str(pki.foreign.key), "--tls-cacertfile", str(pki.ca))
    assert p.returncode == 2 and "keyfile" in p.stderr and len(p.stderr.strip().splitlines()) == 1
    p = _cli(world, "ping", "-n", world["tls"].node, "--ssl-dist-optfile", str(tmp_path / "nope.conf"))
    assert p.returncode == 2 and "nope.conf" in p.stderr


def test_optfile_client_section_parses():
    o = tls.parse_optfile('%% the nodes\' file\n[{server, [{certfile, "s.pem"}]},\n'
                          ' {client, [{certfile, "/c.pem"}, {keyfile, "/c.key"}, {password, "pw"},'
                          ' {cacertfile, "/ca.pem"}, {verify, verify_peer}, {versions, [\'tlsv1.3\']},'
                          ' {server_name_indication, "cluster.example"}, {secure_renegotiate, true},'
                          ' {verify_fun, {inet_tls_dist, verify_client, []}}]}].\n')
    assert (o.certfile, o.keyfile, o.cacertfile, o.verify, o.versions) == \
        ("/c.pem", "/c.key", "/ca.pem", True, ("tlsv1.3",))
    assert o.sni_for("10.0.0.5") == "cluster.example" and "pw" not in repr(o)
    assert any("verify_fun" in n for n in o.notes)
    assert tls.parse_optfile('[{client, [{server_name_indication, disable}]}].').sni_for("h") is None
    for bad in ("[{server, []}].", "not a term", "[{client, [{verify, maybe}]}]."):
        with pytest.raises(UsageError):
            tls.parse_optfile(bad)


def test_handshake_over_the_tls_carrier_has_4_byte_lengths():
    from pyrlang_deploy.erldist.handshake import ClientHandshake, State

    hs = ClientHandshake("me@h", "peer@h", "c", 7, header=4)
    first = hs.initiate()
    assert first[:4] == (len(first) - 4).to_bytes(4, "big") and first[4:5] == b"N"
    hs.receive_data(b"\x00\x00\x00\x03sok")
    assert hs.state is State.AWAIT_CHALLENGE
    plain = ClientHandshake("me@h", "peer@h", "c", 7)
    plain.initiate()
    with pytest.raises(Exception, match="speaks TLS"):
        plain.receive_data(b"\x15\x03\x03\x00\x02\x02\x0a")  # a TLS alert record
