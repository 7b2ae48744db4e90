"""The proof on releases built by the real tools: `rebar3 tar`, `mix release` and Distillery tarballs with
no appup and no relup (tests/support/realrel.py), nodes started by the release's own
`bin/NAME daemon` (Distillery's layout, repacked by realrel: `bin/NAME start`), the generated
tarball installed on two nodes and rolled back.
Read back with erl_call (RelNode.eval).

The install is driven with release_handler itself (erl_call: unpack_release under the name
the layout needs, install_release, make_permanent; install_release of OLD for the way
back), not with `erldeploy install`: unpacking relx and mix tarballs (unpack names, mix
adoption) is the real-releases work of issue 8, in another branch. A mix release has no
RELEASES file; the nodes are adopted first the way DESIGN.md describes.
"""

from __future__ import annotations

import shutil
import tarfile

import pytest

from tests.relupgen.conftest import erldeploy
from tests.support import realrel
from tests.support.nodes import Epmd

ADOPT = ('Root = code:root_dir(), RelDir = filename:join(Root, "releases"), '
         'ok = release_handler:create_RELEASES(Root, RelDir, filename:join([RelDir, "{vsn}", "{name}.rel"]), []), '
         'ok = supervisor:terminate_child(sasl_sup, release_handler), '
         '{{ok, _}} = supervisor:restart_child(sasl_sup, release_handler), ok')
DESCRIBE = "'Elixir.Mixapp.Describe':describe(a)"


def observed(node, pair) -> dict:
    m = pair.modules
    out = {"releases": dict(node.which_releases()), "state_version": node.state_version(),
           "count": node.eval(f"{m.server}:bump() - 1"), "plain": node.plain_value(),
           "added": node.module_loaded(m.added), "removed": node.module_loaded(m.removed)}
    if pair.tool == "mix":
        out["describe_atom"] = node.eval(DESCRIBE)
    return out


def unpack(node, pair, out) -> None:
    """Place OUT where release_handler unpacks it for this layout (LAYOUTS.md) and unpack it."""
    new = pair.new.vsn
    if pair.tool == "relx":
        shutil.copy(out, node.root / "releases" / f"{pair.name}.tar.gz")
        name = pair.name
    else:       # mix, Distillery
        (node.root / "releases" / new).mkdir(exist_ok=True)
        shutil.copy(out, node.root / "releases" / new / f"{pair.name}.tar.gz")
        name = f"{new}/{pair.name}"
    assert node.eval(f'release_handler:unpack_release("{name}")') == f'{{ok,"{new}"}}'


BUILDS = {"relx": realrel.build_relx, "mix": realrel.build_mix, "distillery": realrel.build_distillery}


@pytest.mark.parametrize("tool", list(BUILDS))
def test_generated_upgrade_of_a_real_release(tool, tmp_path):
    pair = BUILDS[tool]()
    out = tmp_path / f"{pair.name}-{pair.new.vsn}.tar.gz"
    # relx: the default OUT (only what nodes on OLD lack); mix: --full (all of NEW)
    full = tool == "mix"
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
        assert not any(n.startswith(("erts-", "lib/kernel-", "lib/stdlib-")) for n in names)

    old, new = pair.old.vsn, pair.new.vsn
    with Epmd() as epmd, realrel.Nodes(tmp_path / "nodes", epmd.port) as nodes:
        started = nodes.start(pair, old, n=2)
        for i, n in enumerate(started):
            if tool == "mix":
                assert n.eval(ADOPT.format(vsn=old, name=pair.name)) == "ok"
            for _ in range(2 + i):
                n.bump()
        before = {n.node: observed(n, pair) for n in started}
        for n in started:
            b = before[n.node]
            assert b["state_version"] == 1 and b["plain"] == old
            assert b["removed"] and not b["added"]

        for n in started:
            unpack(n, pair, out)
            assert n.eval(f'release_handler:install_release("{new}", [{{update_paths, true}}])') \
                == f'{{ok,"{old}",[]}}'
        for n in started:
            assert n.eval(f'release_handler:make_permanent("{new}")') == "ok"
        for n in started:
            a, b = observed(n, pair), before[n.node]
            assert a["releases"][new] == "permanent"
            assert a["state_version"] == 2                        # code_change ran
            assert int(a["count"]) == int(b["count"]) + 1         # ... and the state was kept
            assert a["plain"] == new                              # changed plain module reloaded
            assert a["added"] and not a["removed"]                # new loaded, removed gone
            if tool == "mix":
                assert a["describe_atom"] == "{atom,a}"           # the protocol's new impl dispatches

        for n in started:                                         # back through the relup's down part
            assert n.eval(f'release_handler:install_release("{old}")') == f'{{ok,"{old}",[]}}'
            assert n.eval(f'release_handler:make_permanent("{old}")') == "ok"
        for n in started:
            r, b = observed(n, pair), before[n.node]
            assert r["releases"][old] == "permanent"
            assert r["state_version"] == 1 and int(r["count"]) == int(b["count"]) + 2
            assert r["plain"] == old
            assert r["removed"] and not r["added"]                # removed one is back
            if tool == "mix":
                assert r["describe_atom"] == b["describe_atom"] != "{atom,a}"   # OLD's dispatch again
