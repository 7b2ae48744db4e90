"""The proof on releases built by the real tools: `rebar3 tar`, `mix release` and Distillery tarballs with
no appup and no relup (tests/support/realrel.py), nodes started by the release's own
`bin/NAME daemon` (Distillery's layout, repacked by realrel: `bin/NAME start`), the generated
tarball installed on two nodes by `erldeploy install VSN --tar OUT` and taken back by
`erldeploy rollback`, as users do (the installer finds the layout in OUT; a mix release is
adopted by the install itself). Read back with erl_call (RelNode.eval), never with erldeploy.

OUT is the default one, only what nodes on OLD lack (releases/, the changed app's lib, bin/):
the partial tarball the installer must accept. mix is run once more with `--full`.
"""

from __future__ import annotations

import json
import tarfile

import pytest

from tests.relupgen.conftest import erldeploy
from tests.support import realrel
from tests.support.nodes import Epmd

DESCRIBE = "'Elixir.Mixapp.Describe':describe(a)"
LAYOUT = {"relx": "as 'relxapp' (relx layout)", "mix": "as '{new}/mixapp' (mix layout)",
          "distillery": "as 'relxapp' (distillery layout)"}


def observed(node, pair) -> dict:
    m = pair.modules
    out = {"releases": dict(node.which_releases()), "state_version": node.state_version(),
           "count": node.eval(f"{m.server}:bump() - 1"), "plain": node.plain_value(),
           "added": node.module_loaded(m.added), "removed": node.module_loaded(m.removed)}
    if pair.tool == "mix":
        out["describe_atom"] = node.eval(DESCRIBE)
    return out


def cli(nodes: realrel.Nodes, *args: str):
    """The real command line on every node of `nodes`, in a separate process."""
    env = {"ERLDEPLOY_COOKIE": nodes.cookie, "ERL_EPMD_PORT": str(nodes.epmd_port), "HOME": str(nodes.home)}
    p = erldeploy(*args, *[a for n in nodes.nodes for a in ("-n", n.node)], env=env)
    assert nodes.cookie not in p.stdout + p.stderr
    return p


BUILDS = {"relx": realrel.build_relx, "mix": realrel.build_mix, "distillery": realrel.build_distillery}


@pytest.mark.parametrize("tool,full", [("relx", False), ("mix", False), ("distillery", False), ("mix", True)],
                         ids=["relx", "mix", "distillery", "mix-full"])
def test_generated_upgrade_of_a_real_release(tool, full, tmp_path):
    pair = BUILDS[tool]()
    out = tmp_path / f"{pair.name}-{pair.new.vsn}.tar.gz"
    p = erldeploy("relup", str(pair.old.tarball), str(pair.new.tarball), "-o", str(out), *(["--full"] * full))
    assert p.returncode == 0, p.stderr
    # systools ran with the ERTS the release carries (no erl needed where this runs)
    assert f"the ERTS 13.1.5 that {pair.new.tarball.name} carries" in p.stdout, p.stdout
    assert f", {tool} layout;" in p.stdout
    with tarfile.open(out) as t:
        names = set(t.getnames())
    assert {pair.appup_member, pair.relup_member} <= names
    with tarfile.open(pair.new.tarball) as t:
        new_names = set(t.getnames())
    assert names - new_names == {pair.appup_member, pair.relup_member}     # NEW's layout, nothing else
    if full:
        assert new_names <= names                              # every member of NEW
    else:
        ours = {n for n in new_names if n.startswith((f"lib/{pair.app}-{pair.new.vsn}/", "releases/", "bin/"))}
        assert ours <= names                                   # the changed app, releases, scripts
        assert not any(n.startswith(("erts-", "lib/kernel-", "lib/stdlib-", "lib/elixir-")) for n in names)

    old, new = pair.old.vsn, pair.new.vsn
    with Epmd() as epmd, realrel.Nodes(tmp_path / "nodes", epmd.port) as nodes:
        if tool == "relx":      # one node under heart: doctor's 'no heart' names only the other
            started = [nodes.make(pair, old, heart=True), nodes.make(pair, old)]
            for n in started:
                n.start()
            realrel.connect(started)
        else:
            started = nodes.start(pair, old, n=2)
        for i, n in enumerate(started):
            for _ in range(2 + i):
                n.bump()
        before = {n.node: observed(n, pair) for n in started}
        for n in started:
            b = before[n.node]
            assert b["state_version"] == 1 and b["plain"] == old
            assert b["removed"] and not b["added"]

        p = cli(nodes, "install", new, "--tar", str(out), "--dry-run")
        assert p.returncode == 0, p.stdout + p.stderr
        assert LAYOUT[tool].format(new=new) in p.stdout, p.stdout     # the layout, told from OUT alone
        assert ("adopt first" in p.stdout) == (tool == "mix")
        # doctor's warnings in the preflight, one line per warning naming the node; they do not refuse
        no_heart = [n for n in started if f"warning: {n.node}: heart: not running" in p.stdout]
        assert no_heart == (started[1:] if tool == "relx" else started), p.stdout

        p = cli(nodes, "install", new, "--tar", str(out), "--json")
        assert p.returncode == 0, p.stdout + p.stderr
        report = json.loads(p.stdout)
        assert report["ok"] and report["plan"]["layout"] == tool and report["plan"]["direction"] == "up"
        assert {w.split(": ", 1)[0] for w in report["warnings"] if "heart: not running" in w} \
            == {n.node for n in no_heart}
        for n in started:
            a, b = observed(n, pair), before[n.node]
            assert a["releases"][new] == "permanent" and a["releases"][old] == "old", n.node
            assert a["state_version"] == 2                        # code_change ran
            assert int(a["count"]) == int(b["count"]) + 1         # ... and the state was kept
            assert a["plain"] == new                              # changed plain module reloaded
            assert a["added"] and not a["removed"]                # new loaded, removed gone
            if tool == "mix":
                assert a["describe_atom"] == "{atom,a}"           # the protocol's new impl dispatches

        p = cli(nodes, "rollback")                                # back through the relup's down part
        assert p.returncode == 0, p.stdout + p.stderr
        for n in started:
            r, b = observed(n, pair), before[n.node]
            assert r["releases"][old] == "permanent", n.node
            assert r["state_version"] == 1 and int(r["count"]) == int(b["count"]) + 2
            assert r["plain"] == old
            assert r["removed"] and not r["added"]                # removed one is back
            if tool == "mix":
                assert r["describe_atom"] == b["describe_atom"] != "{atom,a}"   # OLD's dispatch again


def test_partial_tarball_is_refused_where_a_left_out_lib_is_missing(tmp_path):
    # OUT leaves out kernel (same version in OLD and NEW); a node whose root lost that lib
    # dir would fail check_install_release after unpacking: preflight refuses instead
    pair = realrel.build_relx()
    out = tmp_path / f"{pair.name}-{pair.new.vsn}.tar.gz"
    assert erldeploy("relup", str(pair.old.tarball), str(pair.new.tarball), "-o", str(out)).returncode == 0
    with Epmd() as epmd, realrel.Nodes(tmp_path / "nodes", epmd.port) as nodes:
        a, b = nodes.start(pair, pair.old.vsn, n=2)
        kernel = next((b.root / "lib").glob("kernel-*"))
        kernel.rename(b.root / kernel.name)           # out of lib/ (the running node has it loaded)
        p = cli(nodes, "install", pair.new.vsn, "--tar", str(out))
        assert p.returncode == 1, p.stdout + p.stderr
        assert (f"{b.node}: {out.name} leaves out lib/{kernel.name} and the node has no such dir"
                in p.stderr), p.stderr
        assert p.stderr.count("leaves out") == 1 and "Traceback" not in p.stderr    # a has it: not named
        for n in (a, b):                              # no node was changed
            assert n.which_releases() == [(pair.old.vsn, "permanent")], n.node
            assert not list((n.root / "releases").rglob("*.tar.gz"))
