"""The CLI's fast path (argv parsed without asyncclick; one node called without asyncio)
must behave exactly like the full click path: same output, errors and exit codes; and
every command's --help stays right."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from pyrlang_deploy.cli.fastpath import parse
from pyrlang_deploy.cli.main import COMMANDS

CLI = [sys.executable, "-m", "pyrlang_deploy.cli.main"]


def run(args, *, env_extra=None, node=None, timeout=60):
    env = {k: v for k, v in os.environ.items() if not k.startswith("ERLDEPLOY_")}
    env["HOME"] = "/nonexistent"
    if node is not None:
        env["ERLDEPLOY_COOKIE"] = node.cookie
        env["ERL_EPMD_PORT"] = str(node.epmd.port)
    env.update(env_extra or {})
    p = subprocess.run([*CLI, *args], capture_output=True, text=True, env=env, timeout=timeout)
    assert "Traceback" not in p.stderr, p.stderr
    return p


def both(args, **kw):
    """(fast, click) runs of the same command line."""
    fast = run(args, **kw)
    extra = {**(kw.pop("env_extra", None) or {}), "ERLDEPLOY_NO_FAST": "1"}
    slow = run(args, env_extra=extra, **kw)
    return fast, slow


def _same(fast, slow):
    def norm(out: str) -> str:
        try:
            doc = json.loads(out)
        except ValueError:
            return out
        for n in doc.get("nodes", []):
            n.pop("seconds", None)
        return json.dumps(doc, sort_keys=True)
    assert (fast.returncode, norm(fast.stdout), fast.stderr) == (slow.returncode, norm(slow.stdout), slow.stderr)


@pytest.mark.parametrize("command", list(COMMANDS))
def test_every_commands_help(command):
    p = run([command, "--help"])
    assert p.returncode == 0, p.stderr
    assert p.stdout.startswith(f"Usage: erldeploy {command}")
    for opt in ("--node", "--cookie", "--json", "--syntax", "--epmd-port"):
        assert opt in p.stdout, (command, opt)
    if command == "eval":
        assert "--elixir" in p.stdout
    short = run(["-h"])
    assert short.returncode == 0 and f"  {command} " in short.stdout


def test_parse_leaves_what_it_does_not_know_to_click():
    env = {}
    assert parse(["rpc", "-n", "a@h", "erlang", "node"], env) is not None
    for argv in (["--help"], ["rpc", "--help"], ["rpc", "-h", "m", "f"], ["--version"], ["status"],
                 ["rpc", "-na@h", "m", "f"], ["rpc", "--nod", "a@h", "m", "f"], ["rpc", "m"],
                 ["rpc", "--timeout", "soon", "m", "f"], ["rpc", "--syntax", "lisp", "m", "f"],
                 ["eval", "a", "b"], ["ping", "extra"], ["rpc", "m", "f", "-1"], [], ["rpc", "-n"]):
        assert parse(argv, env) is None, argv
    assert parse(["rpc", "m", "f", "--", "-1"], env).positional == ["m", "f", "-1"]
    assert parse(["rpc", "-n", "a@h", "m", "f"], {"ERLDEPLOY_NO_FAST": "1"}) is None


def test_options_and_env_resolve_as_on_the_click_path():
    env = {"ERLDEPLOY_NODE": "e1@h,e2@h", "ERLDEPLOY_COOKIE": "fromenv"}
    p = parse(["-n", "a@h", "--cookie", "opt", "rpc", "m", "f", "--timeout=5", "--json"], env)
    # the group side has -n/--cookie; the command side has none, so it reads the env vars
    assert p.given["node"] == ["a@h", "e1@h", "e2@h"]
    assert (p.given["cookie"], p.given["cookie_source"], p.given["timeout"]) == ("fromenv", "env", 5.0)
    q = parse(["rpc", "-n", "a@h", "-n", "b@h,c@h", "--cookie", "opt", "m", "f"], {})
    assert q.given["node"] == ["a@h", "b@h", "c@h"] and q.given["cookie_source"] == "option"


def test_fast_and_click_paths_agree_on_real_nodes(erl_node):
    n1 = erl_node()
    n2 = erl_node(cookie=n1.cookie)
    cases = [
        ["rpc", "-n", n1.node, "lists", "reverse", '[1, "é", <<"bin">>, {a, b}]'],
        ["-n", n1.node, "--json", "rpc", "erlang", "node"],
        ["rpc", "erlang", "node", "-n", n1.node, "-n", n2.node],
        ["eval", "-n", n1.node, 'io:format("héllo ~p~n", [world]), 6 * 7.'],
        ["rpc", "-n", n1.node, "erlang", "nosuch"],
        ["rpc", "-n", n1.node, "--syntax", "elixir", ":lists", "reverse", "[1, :a, \"b\"]"],
        ["rpc", "-n", n1.node, "erlang", "node", "{unclosed"],
        ["rpc", "-n", "nosuch@127.0.0.1", "erlang", "node"],
        ["rpc", "-n", n1.node, "--timeout", "0.5", "timer", "sleep", "3000"],
        ["eval", "-n", n1.node, "1 +"],
        ["ping", "-n", n1.node, "--epmd-port", "1"],
        ["rpc", "-n", n1.node, "--bogus", "erlang", "node"],
    ]
    for args in cases:
        fast, slow = both(args, node=n1)
        _same(fast, slow)
    wrong = both(["rpc", "-n", n1.node, "erlang", "node"], node=n1, env_extra={"ERLDEPLOY_COOKIE": "wrong"})
    _same(*wrong)
    assert wrong[0].returncode == 3 and "cookie rejected" in wrong[0].stderr
    env_nodes = both(["rpc", "erlang", "node"], node=n1, env_extra={"ERLDEPLOY_NODE": f"{n1.node} {n2.node}"})
    _same(*env_nodes)
    assert env_nodes[0].stdout.count("@127.0.0.1: '") == 2


# What the one-node rpc path must not load (issue 14, "a CLI that starts fast"): asyncclick
# and rich (the click path and tables), asyncio (the blocking driver carries one plain-TCP
# node), ssl (TLS loads only when configured), logging and typing (erldist/debuglog.py, and
# typing under TYPE_CHECKING), hashlib (the handshake's MD5 comes from _md5), the idna codec
# (ASCII host names go to getaddrinfo as bytes), dataclasses (record.py's plain classes),
# secrets/random/ipaddress, tomllib and pathlib (no project file here), and no module of
# the release machinery.
NOT_ON_THE_RPC_PATH = {"asyncclick", "anyio", "rich", "asyncio", "ssl", "logging", "typing", "hashlib",
                       "encodings.idna", "dataclasses", "secrets", "random", "ipaddress",
                       "tomllib", "pathlib", "pyrlang_deploy.jsonable", "pyrlang_deploy.release",
                       "pyrlang_deploy.term.parse", "pyrlang_deploy.term.elixir_parse"}


def _loaded(p) -> set[str]:
    return {line.rsplit("|", 1)[-1].strip() for line in p.stderr.splitlines() if line.startswith("import time:")}


def test_one_node_rpc_loads_neither_asyncio_nor_asyncclick(erl_node):
    n = erl_node()
    p = run(["rpc", "-n", n.node, "erlang", "node"], node=n, env_extra={"PYTHONPROFILEIMPORTTIME": "1"})
    assert p.returncode == 0 and p.stdout.strip() == f"'{n.node}'"
    loaded = _loaded(p)
    assert "pyrlang_deploy.cli.fastpath" in loaded and "pyrlang_deploy.erldist.blocking" in loaded
    assert not NOT_ON_THE_RPC_PATH & loaded, sorted(NOT_ON_THE_RPC_PATH & loaded)


def test_two_nodes_take_the_asyncio_driver(erl_node):
    n1 = erl_node()
    n2 = erl_node(cookie=n1.cookie)
    p = run(["rpc", "-n", n1.node, "-n", n2.node, "erlang", "node"], node=n1,
            env_extra={"PYTHONPROFILEIMPORTTIME": "1"})
    assert p.returncode == 0 and p.stdout.count("@") >= 2, p.stdout
    loaded = _loaded(p)
    assert "asyncio" in loaded and "pyrlang_deploy.erldist.blocking" not in loaded   # the list is real
    assert "asyncclick" not in loaded


def test_help_runs_without_an_event_loop():
    p = run(["--help"], env_extra={"PYTHONPROFILEIMPORTTIME": "1"})
    assert p.returncode == 0 and p.stdout.startswith("Usage: erldeploy")
    loaded = _loaded(p)
    assert "asyncclick" in loaded and "asyncio" not in loaded, sorted(m for m in loaded if "asyncio" in m)


def test_io_output_and_node_loss_on_the_blocking_driver(erl_node):
    """io:format with arguments is formatted on the node by a nested call inside the
    wait (io_server.py); the same text and exit codes as the asyncio driver."""
    n = erl_node()
    cases = [
        ["rpc", "-n", n.node, "io", "format", '"~p and ~s~n"', '[42, "text"]'],
        ["eval", "-n", n.node, 'io:format("a~n"), io:format("~w~n", [b]), c'],
        ["rpc", "-n", n.node, "erlang", "halt"],       # the node goes during the call
    ]
    fast_io, slow_io = both(cases[0], node=n)
    _same(fast_io, slow_io)
    assert fast_io.returncode == 0 and fast_io.stdout == "42 and text\nok\n", fast_io.stdout
    fast_ev, slow_ev = both(cases[1], node=n)
    _same(fast_ev, slow_ev)
    assert fast_ev.stdout == "a\nb\nc\n", fast_ev.stdout
    down = run(cases[2], node=n)
    assert down.returncode == 1, down.stderr
    assert down.stderr.startswith(f"erldeploy: error: {n.node} went down during the call to erlang:halt/0"), \
        down.stderr
