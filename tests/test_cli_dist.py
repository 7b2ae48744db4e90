"""ping / rpc / eval / nodes through the real `erldeploy` process against real nodes:
results in Erlang syntax, --json, and the one-line errors with their exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

CLI = [sys.executable, "-m", "pyrlang_deploy.cli.main"]


def run(node, *args, cookie=None, epmd_port=None, timeout=60, env_extra=None):
    env = {k: v for k, v in os.environ.items() if not k.startswith("ERLDEPLOY_")}
    env["ERLDEPLOY_COOKIE"] = cookie if cookie is not None else node.cookie
    env["ERL_EPMD_PORT"] = str(epmd_port if epmd_port is not None else node.epmd.port)
    env["HOME"] = "/nonexistent"
    env.update(env_extra or {})
    p = subprocess.run([*CLI, *args], capture_output=True, text=True, env=env, timeout=timeout)
    assert "Traceback" not in p.stderr, p.stderr
    assert env["ERLDEPLOY_COOKIE"] not in p.stdout + p.stderr
    return p


def test_rpc_prints_erlang_terms(erl_node):
    n = erl_node()
    p = run(n, "rpc", "-n", n.node, "lists", "reverse", '[1, "é", <<"bin">>, {a, b}, #{k => 1.5}]')
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == '[#{k => 1.5},{a,b},<<"bin">>,"é",1]'


def test_options_before_and_after_the_command_and_json(erl_node):
    n = erl_node()
    a = run(n, "-n", n.node, "--json", "rpc", "erlang", "node")
    b = run(n, "rpc", "erlang", "node", "-n", n.node, "--json")
    assert a.returncode == b.returncode == 0
    da, db = json.loads(a.stdout), json.loads(b.stdout)
    assert da["ok"] and da["nodes"][0]["result"] == n.node == db["nodes"][0]["result"]
    assert da["nodes"][0]["term"] == f"'{n.node}'"


def test_node_list_from_env_and_many_nodes(erl_node):
    n1 = erl_node()
    n2_cookie_same = erl_node(cookie=n1.cookie)
    p = run(n1, "rpc", "erlang", "node", env_extra={"ERLDEPLOY_NODE": f"{n1.node},{n2_cookie_same.node}"})
    assert p.returncode == 0, p.stderr
    assert f"{n1.node}: '{n1.node}'" in p.stdout and f"{n2_cookie_same.node}: '{n2_cookie_same.node}'" in p.stdout


def test_eval_with_io_output(erl_node):
    n = erl_node()
    p = run(n, "eval", "-n", n.node, 'io:format("héllo ~p~n", [world]), X = 6, X * 7.')
    assert p.returncode == 0, p.stderr
    assert p.stdout == "héllo world\n42\n"


def test_ping(erl_node):
    n = erl_node()
    p = run(n, "ping", "-n", n.node)
    assert p.returncode == 0 and "pong" in p.stdout and "OTP" in p.stdout


def test_wrong_cookie_exit_3(erl_node):
    n = erl_node()
    p = run(n, "rpc", "-n", n.node, "erlang", "node", cookie="not-the-cookie")
    assert p.returncode == 3
    assert p.stderr.strip() == f"erldeploy: error: cookie rejected by {n.node}"


def test_unknown_node_lists_what_epmd_knows(erl_node):
    n = erl_node()
    p = run(n, "ping", "-n", "nosuch@127.0.0.1")
    assert p.returncode == 3
    line = p.stderr.strip()
    assert "no node named nosuch on 127.0.0.1" in line and n.alive in line
    assert len(line.splitlines()) == 1


def test_epmd_not_running_exit_3(erl_node, tmp_path):
    from tests.support.nodes import free_port

    n = erl_node()
    port = free_port()
    p = run(n, "ping", "-n", n.node, epmd_port=port)
    assert p.returncode == 3
    assert f"epmd not reachable on 127.0.0.1:{port}" in p.stderr


def test_remote_exception_exit_1_in_erlang_syntax(erl_node):
    n = erl_node()
    p = run(n, "rpc", "-n", n.node, "erlang", "binary_to_atom", "42")
    assert p.returncode == 1
    assert n.node in p.stderr and "badarg" in p.stderr
    assert len(p.stderr.strip().splitlines()) == 1


def test_timeout_exit_1(erl_node):
    n = erl_node()
    t0 = time.monotonic()
    p = run(n, "rpc", "-n", n.node, "--timeout", "0.5", "timer", "sleep", "5000")
    assert p.returncode == 1 and time.monotonic() - t0 < 4
    assert "timer:sleep/1" in p.stderr and n.node in p.stderr


def test_node_killed_during_the_call(erl_node):
    n = erl_node()
    env = {k: v for k, v in os.environ.items() if not k.startswith("ERLDEPLOY_")}
    env.update(ERLDEPLOY_COOKIE=n.cookie, ERL_EPMD_PORT=str(n.epmd.port), HOME="/nonexistent")
    proc = subprocess.Popen([*CLI, "rpc", "-n", n.node, "timer", "sleep", "20000"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    time.sleep(1.0)
    n.kill()
    out, err = proc.communicate(timeout=15)
    assert proc.returncode == 1, err
    assert f"{n.node} went down during the call" in err or "connection to" in err


def test_bad_usage_exit_2(erl_node):
    n = erl_node()
    p = run(n, "install", "-n", n.node, "--strategy", "sideways", "0.0.2")
    assert p.returncode == 2


def test_nodes_discovers_members(erl_node):
    a = erl_node()
    b = erl_node(cookie=a.cookie)
    p = run(a, "eval", "-n", a.node, f"net_kernel:connect_node('{b.node}').")
    assert p.stdout.strip() == "true"
    p = run(a, "nodes", "-n", a.node, "--json")
    doc = json.loads(p.stdout)
    assert sorted(doc["members"]) == sorted([a.node, b.node])
