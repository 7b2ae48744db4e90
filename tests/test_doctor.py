"""erldeploy doctor: the pure warnings on literal facts, then real nodes (a low +Q/+P,
a low ulimit -n, heart, a crash dump) with the numbers checked against erl_call."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from pyrlang_deploy.doctor import Limit, NodeFacts, facts_from_term, warnings_for
from pyrlang_deploy.term.types import Atom, Pid

CLI = [sys.executable, "-m", "pyrlang_deploy.cli.main"]


def facts(**kw) -> NodeFacts:
    base = dict(node="a@h", processes=Limit(40, 262144), ports=Limit(6, 65536), atoms=Limit(9000, 1048576),
                ets=Limit(20, 8192), fd_limit=1048576, heart=True, net_ticktime=60,
                dist_buf_busy_limit=1048576, schedulers=2, schedulers_online=2)
    base.update(kw)
    return NodeFacts(**base)


# --- pure: facts -> warnings ---------------------------------------------------------

def test_healthy_node_has_no_warning():
    assert warnings_for(facts()) == []


def test_each_risk_is_one_line():
    w = warnings_for(facts(ports=Limit(900, 1024), fd_limit=1024, heart=False, atoms=Limit(600000, 1048576),
                           crash_dumps=["/srv/app/erl_crash.dump"]))
    assert len(w) == 5
    assert w[0].startswith("ports: 900 of 1024 in use (88%)")
    assert any(x.startswith("atoms: 600000 of 1048576") for x in w)
    assert any("only 1024" in x and "65536" in x for x in w)
    assert any(x.startswith("heart: not running") for x in w)
    assert w[-1] == "crash dumps left: /srv/app/erl_crash.dump"
    assert all("\n" not in x for x in w)


def test_thresholds_are_inclusive_and_unknowns_never_warn():
    assert warnings_for(facts(ports=Limit(819, 1024))) == []
    assert warnings_for(facts(ports=Limit(820, 1024)))[0].startswith("ports: 820 of 1024")
    assert warnings_for(facts(fd_limit=65536)) == []
    assert warnings_for(facts(ports=Limit(None, None), fd_limit=None, atoms=Limit(5, 0))) == []


def test_facts_from_a_literal_node_map():
    pollset = [(Atom("name"), Atom("erts_poll")), (Atom("max_fds"), 4096)]
    t = {"process_count": 45, "process_limit": 1024, "port_count": 6, "port_limit": 1024,
         "atom_count": 8928, "atom_limit": 1048576, "ets_count": (Atom("EXIT"), Atom("badarg")),
         "ets_limit": 8192, "check_io": [pollset, pollset], "otp_release": "25",
         "heart": Pid(Atom("a@h"), 70, 0, 1), "net_ticktime": (Atom("ongoing_change_to"), 20),
         "memory": [(Atom("total"), 1000), (Atom("ets"), 10)], "wall_clock": (61500, 10),
         "root_dir": "/srv/app", "cwd": (Atom("ok"), "/srv/app"), "root_dumps": ["erl_crash.dump"],
         "cwd_dumps": ["erl_crash.dump"], "crash_dump_env": False, "crash_dump_env_exists": (Atom("EXIT"), 1)}
    f = facts_from_term("a@h", t)
    assert (f.ports.used, f.ports.limit, f.fd_limit, f.heart, f.net_ticktime) == (6, 1024, 4096, True, 20)
    assert f.ets == Limit(None, 8192)     # a fact the node could not give is unknown, not 0
    assert f.uptime_s == 61.5 and f.memory == {"total": 1000, "ets": 10} and f.otp == "25"
    assert f.crash_dumps == ["/srv/app/erl_crash.dump"]    # root and cwd are one place: listed once
    assert not facts_from_term("a@h", {**t, "heart": Atom("undefined")}).heart


# --- real nodes ----------------------------------------------------------------------

def run(node, *args, env_extra=None):
    env = {k: v for k, v in os.environ.items() if not k.startswith("ERLDEPLOY_")}
    env.update(ERLDEPLOY_COOKIE=node.cookie, ERL_EPMD_PORT=str(node.epmd.port), HOME="/nonexistent")
    env.update(env_extra or {})
    p = subprocess.run([*CLI, *args], capture_output=True, text=True, env=env, timeout=60)
    assert "Traceback" not in p.stderr, p.stderr
    return p


def erl_call(node, expr: str, *, source: str | None = None) -> str:
    """The node's own answer, read with erl_call (not with erldeploy): `-a 'M F [Args]'`,
    or with source=..., Erlang expressions evaluated by `erl_call -e`."""
    env = {**os.environ, "ERL_EPMD_PORT": str(node.epmd.port)}
    how = ["-e"] if source is not None else ["-a", expr]
    p = subprocess.run(["erl_call", "-name", node.node, "-c", node.cookie, *how], input=source,
                       capture_output=True, text=True, env=env, timeout=30)
    assert p.returncode == 0, p.stderr
    return p.stdout.strip()


def test_low_port_and_process_limits_and_a_full_port_table(erl_node):
    n = erl_node(args=["+Q", "1024", "+P", "1024"])
    # fill the port table past 80% with UDP sockets, kept open by a registered process
    erl_call(n, "", source="P = spawn(fun() -> [gen_udp:open(0) || _ <- lists:seq(1, 850)], "
                           "receive stop -> ok end end), register(holder, P), timer:sleep(200), ok.\n")
    used = int(erl_call(n, "erlang system_info [port_count]"))
    assert used > 820
    p = run(n, "doctor", "-n", n.node, "--json")
    assert p.returncode == 1, p.stderr
    doc = json.loads(p.stdout)
    (d,) = doc["nodes"]
    assert d["node"] == n.node and set(d) >= {"node", "limits", "heart", "warnings"}
    assert set(d["limits"]) == {"processes", "ports", "atoms", "ets", "fds"}
    assert d["limits"]["ports"]["limit"] == 1024 == int(erl_call(n, "erlang system_info [port_limit]"))
    assert abs(d["limits"]["ports"]["used"] - used) <= 3
    assert d["limits"]["processes"]["limit"] == int(erl_call(n, "erlang system_info [process_limit]"))
    assert d["limits"]["atoms"]["limit"] == int(erl_call(n, "erlang system_info [atom_limit]"))
    assert d["limits"]["ets"]["limit"] == int(erl_call(n, "erlang system_info [ets_limit]"))
    assert d["heart"] is False
    assert any(w.startswith("ports: ") and "of 1024 in use" in w for w in d["warnings"])
    assert any(w.startswith("heart: not running") for w in d["warnings"])
    assert d["net_ticktime"] == int(erl_call(n, "net_kernel get_net_ticktime"))
    assert d["dist_buf_busy_limit"] == int(erl_call(n, "erlang system_info [dist_buf_busy_limit]"))
    text = run(n, "doctor", "-n", n.node)
    assert text.returncode == 1
    assert f"{n.node} (OTP " in text.stdout and "  ports         " in text.stdout
    assert "  warning: ports: " in text.stdout


def test_fd_limit_the_vm_sees(erl_node, tmp_path):
    wrapper = tmp_path / "erl"
    wrapper.write_text(f"#!/bin/sh\nulimit -n 2048\nexec {_real_erl()} \"$@\"\n")
    wrapper.chmod(0o755)
    from tests.support import nodes
    old = nodes.require
    nodes.require = lambda tool: str(wrapper) if tool == "erl" else old(tool)
    try:
        n = erl_node()
    finally:
        nodes.require = old
    d = json.loads(run(n, "doctor", "-n", n.node, "--json").stdout)["nodes"][0]
    assert d["limits"]["fds"]["limit"] == 2048
    assert any("may open only 2048" in w for w in d["warnings"])


def _real_erl() -> str:
    import shutil
    return shutil.which("erl")


def test_heart_and_a_crash_dump(erl_node, tmp_path):
    n = erl_node(args=["-heart", "-env", "HEART_COMMAND", "true"])
    assert erl_call(n, "erlang whereis [heart]").startswith("<")
    dump = tmp_path / "erl_crash.dump"
    dump.write_text("=erl_crash_dump:0.5\n")
    erl_call(n, f'file set_cwd ["{tmp_path}"]')
    d = json.loads(run(n, "doctor", "-n", n.node, "--json").stdout)["nodes"][0]
    assert d["heart"] is True
    assert not any(w.startswith("heart") for w in d["warnings"])
    assert d["crash_dumps"] == [str(dump)]
    assert f"crash dumps left: {dump}" in d["warnings"]


def test_unreachable_node_is_exit_3(erl_node):
    n = erl_node()
    p = run(n, "doctor", "-n", n.node, "-n", "nosuch@127.0.0.1", "--json")
    assert p.returncode == 3
    nodes_ = {d["node"]: d for d in json.loads(p.stdout)["nodes"]}
    assert "error" in nodes_["nosuch@127.0.0.1"] and "limits" in nodes_[n.node]


async def test_doctor_warnings_api(pair):
    from pyrlang_deploy.cluster import Cluster
    from pyrlang_deploy.doctor import doctor_warnings

    _, target = pair
    async with Cluster([target.node], cookie=target.cookie, epmd_port=target.epmd.port) as c:
        w = await doctor_warnings(c)
    assert list(w) == [target.node] and any(x.startswith("heart: not running") for x in w[target.node])
