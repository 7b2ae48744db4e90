"""Users' real releases end to end: rebar3/relx, `mix release` and Distillery-layout nodes started by their own
start scripts, upgraded by erldeploy (mix: adopted first), restarted by that script (it boots
the new release), rolled back, state kept across code_change. Read back with erl_call."""

from __future__ import annotations

import shutil

import pytest

from tests.support import realrel
from tests.support.nodes import Epmd

from .conftest import RelCli


@pytest.fixture
def rel_nodes(tmp_path):
    with Epmd() as epmd, realrel.Nodes(tmp_path, epmd.port) as started:
        yield started


@pytest.mark.parametrize("tool", ["relx", "mix", "distillery"])
def test_real_release_upgrade_restart_rollback(tool, relx_pair, mix_pair, distillery_pair, rel_nodes):
    pair = {"relx": relx_pair, "mix": mix_pair, "distillery": distillery_pair}[tool]
    old, new = pair.old.vsn, pair.new.vsn
    a, b = rel_nodes.start(pair, old, n=2)
    cli = RelCli(rel_nodes)
    counts = {n.node: [n.bump() for _ in range(i + 2)][-1] for i, n in enumerate((a, b))}

    code, st = cli.json("status")
    problems = " ".join(st["problems"])
    if tool == "mix":   # status names it and changes nothing
        assert "mix release, not adopted yet (install adopts it)" in problems
        assert not (a.root / "releases" / "RELEASES").exists()
    p = cli("install", new, "--tar", str(pair.upgrade_tarball), "--dry-run")
    assert p.returncode == 0, p.stdout + p.stderr
    assert ("adopt first" in p.stdout) == (tool == "mix")
    assert {"relx": "as 'relxapp' (relx layout)", "mix": f"as '{new}/mixapp' (mix layout)",
            "distillery": "as 'relxapp' (distillery layout)"}[tool] in p.stdout
    if tool == "mix":
        assert not (a.root / "releases" / "RELEASES").exists()     # a dry run adopts nothing

    if tool == "distillery":   # staged first (`erldeploy upload`), installed without --tar
        p = cli("upload", str(pair.upgrade_tarball))
        assert p.returncode == 0, p.stdout + p.stderr
        p = cli("install", new)
    else:
        p = cli("install", new, "--tar", str(pair.upgrade_tarball))
    assert p.returncode == 0, p.stdout + p.stderr
    for n in (a, b):
        assert n.which_releases()[:2] == [(new, "permanent"), (old, "old")], n.node
        assert n.state_version() == 2 and n.bump() == counts[n.node] + 1       # state kept across code_change
        assert n.plain_value() == new and n.module_loaded(pair.modules.added)
        assert (n.root / "releases" / new / f"{pair.name}.rel").is_file()     # the .rel is still there
        assert not list((n.root / "releases").rglob("*.tar.gz"))
        if tool == "relx":    # its start script now boots the new release
            assert f'REL_VSN="{new}"' in (n.root / "bin" / pair.name).read_text()
        if tool == "distillery":    # the file its launcher reads, which release_handler never writes
            assert (n.root / "var" / "start_erl.data").read_text().split()[1] == new
        if tool == "mix":     # the new consolidated protocols run
            where = n.eval("code:which('Elixir.Mixapp.Describe')")
            assert f"releases/{new}/consolidated" in where, where
    code, st = cli.json("status")
    assert st["one_release"] and not [x for x in st["problems"] if "restart starts" in x], st["problems"]

    b.restart()                                   # by bin/NAME, as a service manager would
    assert b.script_id() == (pair.name, new) and b.current_vsn() == new

    p = cli("rollback")
    assert p.returncode == 0, p.stdout + p.stderr
    for n in (a, b):
        assert n.current_vsn() == old and dict(n.which_releases())[old] == "permanent", n.node
        assert n.state_version() == 1 and n.plain_value() == old
    assert a.bump() == counts[a.node] + 2          # a kept its state through up and down
    if tool == "mix":
        assert f"releases/{old}/consolidated" in a.eval("code:which('Elixir.Mixapp.Describe')")
    b.restart()
    assert b.script_id() == (pair.name, old) and b.current_vsn() == old


@pytest.mark.parametrize("tool", ["relx", "distillery"])
def test_status_says_when_a_restart_would_not_boot_the_permanent_release(tool, relx_pair, distillery_pair,
                                                                          rel_nodes):
    # upgraded by hand with release_handler alone: RELEASES and start_erl.data say NEW, but
    # relx's bin/NAME hard-codes OLD and Distillery's launcher reads var/start_erl.data
    pair = {"relx": relx_pair, "distillery": distillery_pair}[tool]
    old, new = pair.old.vsn, pair.new.vsn
    (n,) = rel_nodes.start(pair, old, n=1)
    shutil.copy(pair.upgrade_tarball, n.root / "releases" / f"{pair.name}.tar.gz")
    assert n.eval(f'release_handler:unpack_release("{pair.name}")') == f'{{ok,"{new}"}}'
    assert n.eval(f'release_handler:install_release("{new}")').startswith("{ok,")
    assert n.eval(f'release_handler:make_permanent("{new}")') == "ok"
    code, st = RelCli(rel_nodes).json("status")
    by = {"relx": f"bin/{pair.name}", "distillery": "var/start_erl.data"}[tool]
    line = f"{n.node}: booted {old}, RELEASES says {new}: a restart starts {old} ({by})"
    assert line in st["problems"], st["problems"]
    assert st["nodes"][0]["next_boot"] == old and st["nodes"][0]["booted"] == old
    n.restart()                       # the line was right
    assert n.script_id() == (pair.name, old)


def test_invented_entry_under_an_existing_releases_file_is_caught(mix_pair, rel_nodes):
    # RELEASES written by hand, release_handler not restarted: it still holds its invented entry
    pair = mix_pair
    (n,) = rel_nodes.start(pair, pair.old.vsn, n=1)
    root = n.root.resolve()
    rel = f"{root}/releases/{pair.old.vsn}/{pair.name}.rel"
    assert n.eval(f'release_handler:create_RELEASES("{root}", "{root}/releases", "{rel}", [])') == "ok"
    cli = RelCli(rel_nodes)
    code, st = cli.json("status")
    assert st["nodes"][0]["adoption"] == "restart"
    assert any("invented entry" in x for x in st["problems"]), st["problems"]
    p = cli("install", pair.new.vsn, "--tar", str(pair.upgrade_tarball), "--dry-run")
    assert p.returncode == 0 and "adopt first" in p.stdout, p.stdout + p.stderr
    p = cli("install", pair.new.vsn, "--tar", str(pair.upgrade_tarball))
    assert p.returncode == 0, p.stdout + p.stderr
    p = cli("rollback")                            # the downgrade an invented entry would crash
    assert p.returncode == 0, p.stdout + p.stderr
    assert n.current_vsn() == pair.old.vsn and n.state_version() == 1
