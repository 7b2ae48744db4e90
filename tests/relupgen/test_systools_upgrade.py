"""The proof on real nodes: a generated upgrade between two systools releases that have no
appup and no relup, installed by `erldeploy install` on two nodes and rolled back.

Everything on the nodes is read back with erl_call (demo_cluster.eval), not with erldeploy.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import tarfile

import demo_cluster

from tests.relupgen.conftest import cluster_env, erldeploy


def releases_of(cluster, node: str) -> dict[str, str]:
    text = cluster.eval(node, "[{V, S} || {_, V, _, S} <- release_handler:which_releases()]")
    return dict(re.findall(r'\{"([^"]+)",(\w+)\}', text))


def facts(cluster, node: str) -> dict[str, str]:
    """What the node runs, each as Erlang text."""
    exprs = {
        "version": "demo_server:version()",
        "count": "demo_server:count()",
        "state_is_map": "is_map(demo_server:get_state())",
        "util": "demo_util:tag()",
        "new_loaded": "code:is_loaded(demo_new) =/= false",
        "new_file": "code:which(demo_new)",
        "old_loaded": "code:is_loaded(demo_old) =/= false",
        "old_file": "code:which(demo_old)",
    }
    return {k: cluster.eval(node, e) for k, e in exprs.items()}


def test_generated_relup_upgrades_and_rolls_back_two_nodes(sys_build, tmp_path):
    out = tmp_path / "demo-0.0.2.tar.gz"
    tars = (str(sys_build.tars["0.0.1"]), str(sys_build.tars["0.0.2"]))
    p = erldeploy("relup", *tars, "-o", str(out))
    assert p.returncode == 0, p.stderr
    assert "code_change demo_server" in p.stdout and "erl on PATH" in p.stdout, p.stdout
    with tarfile.open(out) as t:
        names = t.getnames()
    assert "lib/demo-0.0.2/ebin/demo.appup" in names and "releases/0.0.2/relup" in names
    assert "releases/demo-0.0.2.rel" in names

    local = json.loads(erldeploy("relup", *tars, "--show", "--json").stdout)

    c = demo_cluster.start_cluster(sys_build, tmp_path / "cluster", n=2,
                                   name_prefix=f"g{os.getpid()}{secrets.token_hex(2)}n")
    try:
        env = cluster_env(c)
        # no Erlang where the command runs: systools runs on a node of the cluster
        # (both command-line paths: the fast one runs the node's event loop itself, click's in a thread)
        for path_env in ({}, {"ERLDEPLOY_NO_FAST": "1"}):
            p = erldeploy("relup", *tars, "--show", "--json", "-n", c.nodes[1],
                          env={**env, "PATH": "/nonexistent", **path_env})
            assert p.returncode == 0, p.stderr
            remote = json.loads(p.stdout)
            assert remote["relup_by"] == f"on node {c.nodes[1]}"
            assert remote["relup"] == local["relup"] and remote["appups"] == local["appups"]
        assert c.eval(c.nodes[1], 'filelib:wildcard("/tmp/erldeploy-relup-node-*")') == "[]"   # cleaned up
        for i, node in enumerate(c.nodes):
            c.eval(node, f"[demo_server:bump() || _ <- lists:seq(1, {3 + i})], ok")
            # interactive mode loads on first call: make the module-to-delete really loaded
            assert c.eval(node, "demo_old:gone()") == "still_here"
        before = {n: facts(c, n) for n in c.nodes}
        for n in c.nodes:
            assert before[n]["version"] == '"0.0.1"' and before[n]["state_is_map"] == "false"
            assert before[n]["util"] == '"v1"' and before[n]["old_loaded"] == "true"
            assert before[n]["new_file"] == "non_existing"

        p = erldeploy("install", "0.0.2", "--tar", str(out), "-n", c.nodes[0], "--cluster", "--json", env=env)
        assert p.returncode == 0, p.stdout + p.stderr
        assert json.loads(p.stdout)["ok"] is True
        for i, n in enumerate(c.nodes):
            f = facts(c, n)
            assert releases_of(c, n)["0.0.2"] == "permanent"
            assert f["version"] == '"0.0.2"'                      # new code runs in the process
            assert f["count"] == str(3 + i)                       # the state was kept
            assert f["state_is_map"] == "true"                    # ... and converted by code_change
            assert f["util"] == '{"v2",hello}'                    # changed plain module reloaded
            assert f["new_loaded"] == "true"                      # new module loaded
            assert f["old_loaded"] == "false" and f["old_file"] == "non_existing"   # removed one gone

        p = erldeploy("rollback", "-n", c.nodes[0], "--cluster", "--json", env=env)
        assert p.returncode == 0, p.stdout + p.stderr
        for i, n in enumerate(c.nodes):
            f = facts(c, n)
            assert releases_of(c, n)["0.0.1"] == "permanent"
            assert f["version"] == '"0.0.1"' and f["count"] == str(3 + i)
            assert f["state_is_map"] == "false"                   # converted back by code_change down
            assert f["util"] == '"v1"'
            assert f["old_loaded"] == "true" and f["old_file"].endswith('demo-0.0.1/ebin/demo_old.beam"')
            assert f["new_loaded"] == "false"
    finally:
        c.stop()
