"""`erldeploy relup` as a command on real releases, without nodes: release dirs as input,
--show, --json, --restart, --appup-dir, and the one-line errors."""

from __future__ import annotations

import json
import tarfile

from tests.relupgen.conftest import erldeploy
from tests.support import realrel


def _appup_of(tar, member: str) -> str:
    with tarfile.open(tar) as t:
        return t.extractfile(member).read().decode()


def test_release_dirs_give_the_same_appups_as_tarballs(tmp_path):
    for pair, layout in ((realrel.build_relx(), "relx"), (realrel.build_mix(), "mix"),
                         (realrel.build_distillery(), "distillery")):
        docs = []
        for old, new in ((pair.old.tarball, pair.new.tarball), (pair.old.release_dir, pair.new.release_dir)):
            p = erldeploy("relup", str(old), str(new), "--show", "--json")
            assert p.returncode == 0, p.stderr
            docs.append(json.loads(p.stdout))
        assert docs[0]["appups"] == docs[1]["appups"] and docs[0]["appups"][pair.app]
        assert docs[0]["layout"] == docs[1]["layout"] == layout
        assert docs[0]["out"] is None and not list(tmp_path.iterdir())     # --show writes nothing


def test_json_summary_of_the_systools_fixture(sys_build):
    p = erldeploy("relup", str(sys_build.tars["0.0.1"]), str(sys_build.tars["0.0.2"]), "--show", "--json")
    assert p.returncode == 0, p.stderr
    doc = json.loads(p.stdout)
    assert doc["schema"] == "erldeploy.relup/1" and doc["relup_by"].startswith("erl on PATH")
    (app,) = doc["apps"]
    assert (app["app"], app["kind"], app["appup"]) == ("demo", "changed", "generated")
    assert app["updated_code_change"] == ["demo_server"] and app["loaded"] == ["demo_util"]
    assert app["added"] == ["demo_new"] and app["deleted"] == ["demo_old"]
    assert doc["warnings"] == []


def test_show_prints_appups_and_the_relup_plan(sys_build, tmp_path):
    p = erldeploy("relup", str(sys_build.tars["0.0.1"]), str(sys_build.tars["0.0.2"]), "--show",
                  cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert "--- lib/demo-0.0.2/ebin/demo.appup" in p.stdout
    assert "{load_module,demo_util,[demo_new]}" in p.stdout
    assert "up from 0.0.1:" in p.stdout and "down to 0.0.1:" in p.stdout
    assert "code_change up [{demo_server,[]}]" in p.stdout and "code_change down" in p.stdout
    assert not list(tmp_path.iterdir())


def test_restart_builds_a_restart_emulator_relup(sys_build, tmp_path):
    out = tmp_path / "demo-0.0.2.tar.gz"
    p = erldeploy("relup", str(sys_build.tars["0.0.1"]), str(sys_build.tars["0.0.2"]), "-o", str(out),
                  "--restart", "--json")
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["restart"] is True
    relup = _appup_of(out, "releases/0.0.2/relup")
    # systools' own relup: nothing loaded before the restart, both ways
    assert relup.count("restart_emulator") == 2 and "load_object_code" not in relup


def test_appup_dir_wins_and_ships_byte_for_byte(tmp_path):
    pair = realrel.build_relx()
    out = tmp_path / "relxapp-1.0.1.tar.gz"
    p = erldeploy("relup", str(pair.old.tarball), str(pair.new.tarball), "-o", str(out),
                  "--appup-dir", str(pair.appup.parent))
    assert p.returncode == 0, p.stderr
    assert "appup from --appup-dir" in p.stdout
    assert _appup_of(out, pair.appup_member) == pair.appup.read_text()


def test_errors_are_one_line(sys_build, tmp_path):
    other = realrel.build_relx()
    p = erldeploy("relup", str(sys_build.tars["0.0.1"]), str(other.new.tarball), "--show")
    assert p.returncode == 2 and p.stderr.strip().count("\n") == 0
    assert "OLD is release demo and NEW is relxapp" in p.stderr
    bad = tmp_path / "bad.tar.gz"
    bad.write_bytes(b"\x1f\x8b not really gzip")
    p = erldeploy("relup", str(bad), str(sys_build.tars["0.0.2"]), "--show")
    assert p.returncode == 1 and "bad.tar.gz: not a readable tarball" in p.stderr
    p = erldeploy("relup", str(sys_build.tars["0.0.1"]), str(sys_build.tars["0.0.2"]))
    assert p.returncode == 2 and "needs -o OUT.tar.gz" in p.stderr
    p = erldeploy("relup", str(sys_build.tars["0.0.2"]), str(sys_build.tars["0.0.1"]), "--show")
    assert p.returncode == 0 and "warning: NEW demo 0.0.1 is not newer than OLD 0.0.2" in p.stderr


# relup's fast path (cli/fastpath.py -> cli/relup_ops.py) must do what the click path does,
# without the distribution client's imports: no asyncclick, no asyncio, no ssl.
NOT_ON_THE_RELUP_PATH = {"asyncclick", "anyio", "asyncio", "ssl", "rich", "pyrlang_deploy.erldist.carrier"}


def test_fast_path_matches_click_and_loads_no_event_loop(sys_build, tmp_path):
    old, new = str(sys_build.tars["0.0.1"]), str(sys_build.tars["0.0.2"])
    cases = [[old, new, "--show", "--json"], [old, new, "--show"], [old, new],
             [old, new, "--show", "--appup-dir", str(tmp_path / "nosuch")], [old, str(tmp_path / "nosuch"), "--show"],
             [new, old, "--show", "-q"]]
    for args in cases:
        fast = erldeploy("relup", *args)
        slow = erldeploy("relup", *args, env={"ERLDEPLOY_NO_FAST": "1"})
        assert (fast.returncode, fast.stdout, fast.stderr) == (slow.returncode, slow.stdout, slow.stderr), args
    outs = {}
    for label, env in (("fast", {"PYTHONPROFILEIMPORTTIME": "1"}), ("click", {"ERLDEPLOY_NO_FAST": "1"})):
        out = tmp_path / label / "demo-0.0.2.tar.gz"
        p = erldeploy("relup", old, new, "-o", str(out), "--full", env=env)
        assert p.returncode == 0, p.stderr
        with tarfile.open(out) as t:
            outs[label] = {m.name: (m.mode, t.extractfile(m).read() if m.isfile() else None) for m in t.getmembers()}
        if label == "fast":
            loaded = {line.rsplit("|", 1)[-1].strip() for line in p.stderr.splitlines()
                      if line.startswith("import time:")}
            assert "pyrlang_deploy.cli.relup_ops" in loaded and "tarfile" in loaded    # the list is real
            assert not NOT_ON_THE_RELUP_PATH & loaded, sorted(NOT_ON_THE_RELUP_PATH & loaded)
    assert outs["fast"] == outs["click"] and "releases/0.0.2/relup" in outs["fast"]


def test_fast_path_parses_relup_or_leaves_it_to_click(tmp_path):
    from pyrlang_deploy.cli.fastpath import parse

    a, b = tmp_path / "a.tar.gz", tmp_path / "b.tar.gz"
    a.write_bytes(b"")
    b.write_bytes(b"")
    p = parse(["relup", str(a), str(b), "-o", "x.tar.gz", "--out=y.tar.gz", "--restart", "-q"], {})
    assert (p.command, p.positional, p.values, p.flags) == \
        ("relup", [str(a), str(b)], {"out": "y.tar.gz"}, {"restart": True})       # later -o wins, as in click
    assert p.given["quiet"] is True
    for argv in (["relup", str(a)], ["relup", str(a), str(tmp_path / "nosuch"), "--show"],
                 ["relup", str(a), str(b), "-o", str(tmp_path)], ["relup", str(a), str(b), "-o"],
                 ["relup", str(a), str(b), "--appup-dir", str(a)], ["relup", str(a), str(b), "--show=1"],
                 ["relup", str(a), str(b), "--help"], ["relup", str(a), str(b), "-ox.tar.gz"]):
        assert parse(argv, {}) is None, argv
