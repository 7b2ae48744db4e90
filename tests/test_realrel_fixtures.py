"""The users' real-release fixtures (tests/support/realrel.py), proven on real nodes.

Each fixture is built by its real tool, two nodes of it start by the release's own script,
answer over erl_call and report the expected release; the hand-written-appup upgrade tarball
upgrades a node and rolls it back with plain release_handler calls; teardown leaves no OS
process behind. These tests also pin down the layout facts tests/fixtures/LAYOUTS.md states.
"""

from __future__ import annotations

import ast
import shutil
import subprocess
import tarfile
import time
from functools import cache
from pathlib import Path

import pytest

from tests.support import realrel
from tests.support.nodes import Epmd

BUILDERS = {"relx": realrel.build_relx, "mix": realrel.build_mix, "distillery": realrel.build_distillery}


@pytest.fixture(scope="module", params=sorted(BUILDERS))
def pair(request) -> realrel.Pair:
    return BUILDERS[request.param]()


@pytest.fixture
def nodes(tmp_path):
    with Epmd() as epmd, realrel.Nodes(tmp_path, epmd.port) as started:
        yield started


@cache
def _read(tar: Path) -> tuple[list[str], dict[str, bytes]]:
    """One pass over a tarball: every member name, and the content of those outside lib/ and erts."""
    names, texts = [], {}
    with tarfile.open(tar) as t:
        for m in t:
            names.append(m.name)
            if m.isfile() and not m.name.startswith(("lib/", "erts-")):
                texts[m.name] = t.extractfile(m).read()
    return names, texts


def members(tar: Path) -> list[str]:
    return _read(tar)[0]


def read_member(tar: Path, name: str) -> str:
    texts = _read(tar)[1]
    if name in texts:
        return texts[name].decode()
    with tarfile.open(tar) as t:
        return t.extractfile(name).read().decode()


def consult(text: str):
    """The first Erlang term of a .rel/.appup/relup text, parsed by `erl` (a real Erlang
    parser, not ours) and printed as a Python literal: tuples as tuples, atoms and strings as str."""
    expr = ("{ok, Ts, _} = erl_scan:string(binary_to_list(binary:decode_hex(<<\""
            + text.encode().hex().upper() + "\">>))), "
            "{ok, T} = erl_parse:parse_term(lists:takewhile(fun({dot, _}) -> false; (_) -> true end, Ts) "
            "++ [{dot, 1}]), "
            "Join = fun(Xs) -> lists:join(\", \", Xs) end, "
            "P = fun P(X) when is_tuple(X) -> [\"(\", [[P(E), \",\"] || E <- tuple_to_list(X)], \")\"]; "
            "P(X) when is_atom(X) -> io_lib:format(\"~p\", [atom_to_list(X)]); "
            "P([]) -> \"[]\"; "
            "P(X) when is_list(X) -> case io_lib:printable_list(X) of "
            "true -> io_lib:format(\"~p\", [X]); false -> [\"[\", Join([P(E) || E <- X]), \"]\"] end; "
            "P(X) when is_integer(X) -> integer_to_list(X) end, "
            "io:put_chars(P(T)), halt().")
    out = subprocess.run(["erl", "-noshell", "-boot", "start_clean", "-eval", expr], capture_output=True,
                         text=True, check=True, timeout=60).stdout
    return ast.literal_eval(out)


# --- builds ---------------------------------------------------------------------------------

def test_relx_tarballs_have_relx_layout():
    pair = realrel.build_relx()
    assert (pair.old.vsn, pair.new.vsn) == ("1.0.0", "1.0.1")
    for rel in (pair.old, pair.new):
        names = members(rel.tarball)
        assert rel.tarball.name == f"relxapp-{rel.vsn}.tar.gz"
        for m in ("bin/relxapp", f"bin/relxapp-{rel.vsn}", "releases/relxapp.rel", f"releases/{rel.vsn}/relxapp.rel",
                  "releases/RELEASES", "releases/start_erl.data", f"releases/{rel.vsn}/start.boot",
                  f"releases/{rel.vsn}/vm.args.src", f"lib/relxapp-{rel.vsn}/ebin/relxapp.app", "erts-13.1.5/bin/beam.smp"):
            assert m in names, (rel.tarball, m)
        assert not [m for m in names if m.endswith(("relxapp.appup", "/relup"))], "plain tarballs carry no upgrade"
        assert f'REL_VSN="{rel.vsn}"' in read_member(rel.tarball, "bin/relxapp")   # hard-coded version
        rel_text = read_member(rel.tarball, rel.rel_member)
        assert rel_text == read_member(rel.tarball, "releases/relxapp.rel")
        assert f'{{relxapp,"{rel.vsn}"}}' in rel_text.replace(" ", "").replace("\n", "")
        assert f'"{rel.vsn}",' in read_member(rel.tarball, "releases/RELEASES")
        assert read_member(rel.tarball, "releases/start_erl.data").split() == ["13.1.5", rel.vsn]
        assert (rel.release_dir / "bin" / "relxapp").is_file()
    assert "lib/relxapp-1.0.0/ebin/relxapp_old.beam" in members(pair.old.tarball)
    assert "lib/relxapp-1.0.1/ebin/relxapp_new.beam" in members(pair.new.tarball)
    assert "lib/relxapp-1.0.1/ebin/relxapp_old.beam" not in members(pair.new.tarball)


def test_mix_tarballs_have_mix_layout():
    pair = realrel.build_mix()
    assert (pair.old.vsn, pair.new.vsn) == ("0.1.0", "0.2.0")
    for rel in (pair.old, pair.new):
        names = members(rel.tarball)
        assert rel.tarball.name == f"mixapp-{rel.vsn}.tar.gz"
        for m in ("bin/mixapp", f"releases/{rel.vsn}/mixapp.rel", "releases/start_erl.data", "releases/COOKIE",
                  f"releases/{rel.vsn}/start.boot", f"releases/{rel.vsn}/env.sh", f"releases/{rel.vsn}/vm.args",
                  f"releases/{rel.vsn}/consolidated/Elixir.Mixapp.Describe.beam",
                  f"lib/mixapp-{rel.vsn}/ebin/mixapp.app", "erts-13.1.5/bin/beam.smp"):
            assert m in names, (rel.tarball, m)
        # no RELEASES, no releases/NAME.rel, no NAME-VSN.rel: only releases/VSN/NAME.rel
        assert [m for m in names if m.endswith(".rel")] == [rel.rel_member]
        assert "releases/RELEASES" not in names
        assert not [m for m in names if m.endswith(("mixapp.appup", "/relup"))]   # OTP apps' appups ship
        assert "start_erl.data" in read_member(rel.tarball, "bin/mixapp")      # the launcher reads it
        assert read_member(rel.tarball, "releases/start_erl.data").split() == ["13.1.5", rel.vsn]
        assert (rel.release_dir / "bin" / "mixapp").is_file()
        assert (rel.release_dir / "releases" / rel.vsn / "mixapp.rel").is_file()
    assert "lib/mixapp-0.1.0/ebin/Elixir.Mixapp.Old.beam" in members(pair.old.tarball)
    assert "lib/mixapp-0.2.0/ebin/Elixir.Mixapp.New.beam" in members(pair.new.tarball)


def test_distillery_tarballs_have_distillery_layout():
    pair = realrel.build_distillery()
    assert (pair.old.vsn, pair.new.vsn) == ("1.0.0", "1.0.1")
    for rel in (pair.old, pair.new):
        assert rel.tarball == rel.release_dir / "releases" / rel.vsn / "relxapp.tar.gz"   # where Distillery writes it
        names = members(rel.tarball)
        for m in ("bin/relxapp", "bin/start_clean.boot", "releases/relxapp.rel", f"releases/{rel.vsn}/relxapp.rel",
                  f"releases/{rel.vsn}/relxapp.boot", f"releases/{rel.vsn}/relxapp.sh", f"releases/{rel.vsn}/vm.args",
                  f"releases/{rel.vsn}/sys.config", "releases/RELEASES", "releases/start_erl.data",
                  f"lib/relxapp-{rel.vsn}/ebin/relxapp_plain.beam", "erts-13.1.5/bin/run_erl"):
            assert m in names, (rel.tarball, m)
        assert not [m for m in names if m.startswith("var") or m.endswith(("relxapp.appup", "/relup", ".tar.gz"))]
        launcher = read_member(rel.tarball, "bin/relxapp")
        assert "var" in launcher and "start_erl.data" in launcher and rel.vsn not in launcher
        releases = consult(read_member(rel.tarball, "releases/RELEASES"))
        assert [(r[1], r[2], r[5]) for r in releases] == [("relxapp", rel.vsn, "permanent")]   # this one only
        assert ("relxapp", rel.vsn, f"./lib/relxapp-{rel.vsn}") in releases[0][4]
    assert "lib/relxapp-1.0.0/ebin/relxapp_old.beam" in members(pair.old.tarball)
    assert pair.upgrade_tarball.name == "relxapp.tar.gz"


def test_rel_files_tuple_shapes():
    """relx writes {release, {Name, Vsn}, {erts, E}, [{App, Vsn}]}; mix 3-tuples {App, Vsn, Type}."""
    relx, mix = realrel.build_relx(), realrel.build_mix()
    rel = consult(read_member(relx.new.tarball, relx.new.rel_member))
    assert rel[:3] == ("release", ("relxapp", "1.0.1"), ("erts", "13.1.5"))
    apps = {a[0]: a[1:] for a in rel[3]}
    assert apps["relxapp"] == ("1.0.1",) and apps["sasl"] == ("4.2",)
    rel = consult(read_member(mix.new.tarball, mix.new.rel_member))
    assert rel[:3] == ("release", ("mixapp", "0.2.0"), ("erts", "13.1.5"))
    apps = {a[0]: a[1:] for a in rel[3]}
    assert apps["mixapp"] == ("0.2.0", "permanent") and apps["sasl"] == ("4.2", "permanent")
    assert apps["iex"] == ("1.14.0", "none")


def test_upgrade_tarball_adds_appup_and_relup_only(pair):
    plain, upgrade = members(pair.new.tarball), members(pair.upgrade_tarball)
    assert sorted(set(upgrade) - set(plain)) == sorted([pair.appup_member, pair.relup_member])
    assert set(plain) <= set(upgrade)
    assert read_member(pair.upgrade_tarball, pair.appup_member) == pair.appup.read_text()
    vsn, ups, downs = consult(read_member(pair.upgrade_tarball, pair.relup_member))
    assert vsn == pair.new.vsn
    assert [u[0] for u in ups] == [pair.old.vsn]        # up from OLD
    assert [d[0] for d in downs] == [pair.old.vsn]      # down to OLD
    up_ops = [i[0] if isinstance(i, tuple) else i for i in ups[0][2]]
    assert "point_of_no_return" in up_ops and "code_change" in up_ops
    # executable bits survive the repack (bin/NAME must still start)
    with tarfile.open(pair.upgrade_tarball) as t:
        assert t.getmember(f"bin/{pair.name}").mode & 0o111


def test_builds_are_cached(pair):
    builder = BUILDERS[pair.tool]
    builder.cache_clear()                       # drop the in-process memo: read the disk cache
    started = time.monotonic()
    again = builder()
    assert time.monotonic() - started < 5, "a warm build is a stamp read, not a rebuild"
    assert again == pair
    stamp = (pair.cache_dir / "stamp.json").read_text()
    assert '"build_seconds"' in stamp


# --- nodes ----------------------------------------------------------------------------------

def live_processes_under(path: Path) -> list[str]:
    """`ps` lines (not zombies) of processes whose command line or executable is under path."""
    out = subprocess.run(["ps", "-eo", "pid=,stat=,args="], capture_output=True, text=True, check=True).stdout
    found = []
    prefix = str(path.resolve())
    for line in out.splitlines():
        pid, stat, args = (line.split(None, 2) + [""])[:3]
        if stat.startswith("Z"):
            continue
        try:
            exe = str(Path(f"/proc/{pid}/exe").readlink())
        except OSError:
            exe = ""
        if prefix in args or exe.startswith(prefix):
            found.append(line.strip())
    return found


def wait_gone(path: Path, timeout: float = 10.0) -> list[str]:
    deadline = time.monotonic() + timeout
    while (left := live_processes_under(path)) and time.monotonic() < deadline:
        time.sleep(0.1)
    return left


@pytest.mark.parametrize("long", [True, False], ids=["name", "sname"])
def test_two_nodes_boot_by_their_own_script(pair, long, tmp_path):
    old = pair.old
    with Epmd() as epmd:
        with realrel.Nodes(tmp_path, epmd.port) as nodes:
            started = nodes.start(pair, old.vsn, n=2, long=long)
            pids = {}
            assert len({node.root for node in started}) == 2
            for node in started:
                assert node.root.parent == tmp_path.resolve()
                assert node.which_releases() == [(old.vsn, "permanent")]
                assert node.script_id() == (pair.name, old.vsn)
                assert node.current_vsn() == old.vsn
                assert node.app_vsn(pair.app) == old.vsn
                assert node.app_vsn("sasl") is not None                 # release_handler is there
                assert node.state_version() == 1
                assert node.bump() == 1 and node.bump() == 2
                assert node.plain_value() == old.vsn
                assert node.module_loaded(pair.modules.removed) and not node.module_loaded(pair.modules.added)
                assert Path(node.root_dir()) == node.root                # a root dir per node
                assert node.os_pid() in node.pids()
                pids[node.node] = node.pids()
            # started by the release's own script, detached under run_erl (the daemon way)
            for node in started:
                exes = {realrel._exe_name(p) for p in pids[node.node]}
                assert {"beam.smp", "run_erl"} <= exes, exes
                assert node.launcher.poll() is not None, "the daemon command returned"
            other = started[1].node
            assert other in started[0].eval("nodes()")
            assert epmd.names() and all(n.alive in epmd.names() for n in started)
        assert wait_gone(tmp_path) == [], "every process of the node roots is gone"
        assert [pid for plist in pids.values() for pid in plist if _alive(pid)] == []


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def test_relx_foreground_mode(tmp_path):
    """`bin/relxapp foreground` started in the background: the emulator is the launcher."""
    pair = realrel.build_relx()
    with Epmd() as epmd, realrel.Nodes(tmp_path, epmd.port) as nodes:
        node = nodes.make(pair, pair.new.vsn, mode="foreground").start()
        assert node.script_id() == ("relxapp", "1.0.1")
        assert node.os_pid() == node.launcher.pid              # exec'ed: same pid
    assert wait_gone(tmp_path) == []


def test_stop_by_script(pair, nodes):
    (node,) = nodes.start(pair, pair.new.vsn, n=1)
    pid = node.os_pid()
    assert node.stop_by_script() is True, "bin/NAME stop: the node and its helpers exit by themselves"
    assert node.pids() == [] and not _alive(pid)


# --- the upgrade tarball works (plain release_handler, as a reference for the installer) -----

def adopt_mix(node: realrel.RelNode, vsn: str) -> None:
    """What a mix release lacks for downgrades: a RELEASES file (see DESIGN.md)."""
    out = node.eval(f'''Root = code:root_dir(),
        Rel = filename:join([Root, "releases", "{vsn}", "{node.name}.rel"]),
        ok = release_handler:create_RELEASES(Root, filename:join(Root, "releases"), Rel, []),
        ok = supervisor:terminate_child(sasl_sup, release_handler),
        {{ok, _}} = supervisor:restart_child(sasl_sup, release_handler),
        [{{_, "{vsn}", Libs, permanent}}] = release_handler:which_releases(),
        length(Libs)''')
    assert int(out) > 0, "adopted: the release has its libs"


def test_upgrade_tarball_upgrades_and_rolls_back(pair, nodes):
    old, new = pair.old.vsn, pair.new.vsn
    (node,) = nodes.start(pair, old, n=1)
    if pair.tool == "mix":
        assert not (node.root / "releases" / "RELEASES").exists()
        adopt_mix(node, old)
    assert node.bump() == 1
    # relx: the unpack name that keeps releases/VSN/NAME.rel (releases/NAME.rel is the one deleted).
    # mix: a tarball with only releases/VSN/NAME.rel: "VSN/NAME" (which deletes it).
    # Distillery: its own way, the tarball at releases/VSN/NAME.tar.gz, unpacked as "VSN/NAME".
    unpack_as = {"relx": pair.name}.get(pair.tool, f"{new}/{pair.name}")
    dest = node.root / "releases" / f"{unpack_as}.tar.gz"
    dest.parent.mkdir(exist_ok=True)
    shutil.copy(pair.upgrade_tarball, dest)
    assert node.eval(f'release_handler:unpack_release("{unpack_as}")') == f'{{ok,"{new}"}}'
    assert (node.root / "releases" / new / f"{pair.name}.rel").is_file() == (pair.tool == "relx")
    assert not dest.exists(), "release_handler deletes the tarball it unpacked"
    assert node.eval(f'release_handler:install_release("{new}", [{{update_paths, true}}])') \
        == f'{{ok,"{old}",[]}}'
    assert node.which_releases() == [(new, "current"), (old, "permanent")]
    assert node.state_version() == 2 and "upgraded_from => 1" in node.server_state()
    assert node.bump() == 2                                             # state kept
    assert node.plain_value() == new
    assert node.module_loaded(pair.modules.added) and not node.module_loaded(pair.modules.removed)
    assert node.eval(f'release_handler:make_permanent("{new}")') == "ok"

    assert node.eval(f'release_handler:install_release("{old}")') == f'{{ok,"{old}",[]}}'
    assert node.state_version() == 1 and node.bump() == 3
    assert node.plain_value() == old
    assert node.module_loaded(pair.modules.removed) and not node.module_loaded(pair.modules.added)
    assert node.eval(f'release_handler:install_release("{new}")') == f'{{ok,"{old}",[]}}'
    assert node.eval(f'release_handler:make_permanent("{new}")') == "ok"
    assert (node.root / "releases" / "start_erl.data").read_text().split() == ["13.1.5", new]

    if pair.tool == "distillery":   # its launcher's own copy, which release_handler never updates
        assert (node.root / "var" / "start_erl.data").read_text().split() == ["13.1.5", old]

    # Restarted by its own script: what it boots is the script's choice (LAYOUTS.md). relx's
    # bin/NAME hard-codes its version, Distillery's reads var/start_erl.data: both boot OLD.
    node.restart()
    booted = {"relx": old, "mix": new, "distillery": old}[pair.tool]
    assert node.script_id() == (pair.name, booted)
    assert dict(node.which_releases())[new] == "permanent"
