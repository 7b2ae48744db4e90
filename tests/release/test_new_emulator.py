"""An emulator-restart upgrade (restart_new_emulator) on real heart nodes, and back.

Only one OTP is installed, so the new emulator is made the other way systools knows: NEW
carries a core application under a new version (stdlib 4.2 copied as stdlib 4.2.0.1,
tests/support/heartnodes.bumped_core_release), so systools:make_relup (through `erldeploy
relup`) puts restart_new_emulator first in the up script and restart_emulator last in the
down one. release_handler then reboots each node into a temporary release
(__new_emulator__OLD: NEW's emulator and kernel/stdlib/sasl, OLD's other apps) whose boot
script ends with release_handler:new_emulator_upgrade, which runs the rest of the relup:
NEW is then current, permanent only after make_permanent. Everything is read back with
erl_call.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.release.conftest import HOOK
from tests.release.test_restart import _running_apps, _wait_new_emulator, hook_log, run_cli
from tests.support.heartnodes import HeartCluster, bumped_core_release


def make_relup(old: Path, new: Path, out: Path) -> subprocess.CompletedProcess:
    """`erldeploy relup OLD NEW -o OUT`, as a user runs it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ERLDEPLOY_")}
    p = subprocess.run([sys.executable, "-m", "pyrlang_deploy.cli.main", "relup", str(old), str(new), "-o", str(out)],
                       capture_output=True, text=True, env=env, timeout=300)
    assert p.returncode == 0 and "Traceback" not in p.stderr, p.stderr
    return p


@pytest.fixture(scope="module")
def new_emulator_tar(demo_build, hook_beam, tmp_path_factory) -> tuple[Path, str, subprocess.CompletedProcess]:
    """demo 0.0.2 with stdlib bumped, its relup made by `erldeploy relup` from the 0.0.1 tarball."""
    work = tmp_path_factory.mktemp("newemu")
    new, stdlib = bumped_core_release(demo_build, work / "build", app="stdlib", extra_beams=[hook_beam])
    out = work / "out" / "demo-0.0.2.tar.gz"
    return out, stdlib, make_relup(demo_build.tars["0.0.1"], new, out)


def test_relup_says_it_restarts_the_emulator_and_generates_it(new_emulator_tar):
    import tarfile

    out, stdlib, p = new_emulator_tar
    assert stdlib == "4.2.0.1"
    assert "demo 0.0.1 -> 0.0.2: emulator-restart upgrade (restart_new_emulator" in p.stdout
    assert f"changed  stdlib 4.2 -> {stdlib}" in p.stdout
    assert p.stdout.strip().endswith(f"erldeploy install 0.0.2 --tar {out} --restart")
    assert f"warning: stdlib 4.2 -> {stdlib}: the relup restarts the emulator (restart_new_emulator)" in p.stderr
    with tarfile.open(out) as t:
        relup = t.extractfile("releases/0.0.2/relup").read().decode()
        names = t.getnames()
    up, down = relup.split("]}],", 1)
    assert up.split('"0.0.1",[],')[1].lstrip("\n [").startswith("restart_new_emulator")   # first, up
    assert down.rstrip().rstrip("]}.").rstrip().endswith("restart_emulator")               # last, down
    assert f"lib/stdlib-{stdlib}/ebin/lists.beam" in names and "lib/kernel-8.5.3/ebin/kernel.app" not in names


def test_new_emulator_upgrade_through_heart_and_back(demo_build, hook_beam, new_emulator_tar, tmp_path):
    out, stdlib, _ = new_emulator_tar
    c = HeartCluster(demo_build, tmp_path / "hc", n=2, extra_beams=[hook_beam])
    try:
        n1, n2 = c.nodes
        pids = {n.node: n.os_pid() for n in c.nodes}

        # a hot install would reboot every node: refused, one line, nothing changed
        p, rep = run_cli(c, "install", "0.0.2", "--tar", str(out))
        msg = rep["error"]["message"]
        assert p.returncode == 1 and "\n" not in p.stderr.strip(), p.stderr
        assert "releases/0.0.2/relup's entry 0.0.1 -> 0.0.2 restarts the emulator (restart_new_emulator)" in msg
        assert "run it with --restart" in msg
        assert {n.node: n.os_pid() for n in c.nodes} == pids
        assert all(n.releases() == {"0.0.1": "permanent"} for n in c.nodes)

        p, rep = run_cli(c, "install", "0.0.2", "--tar", str(out), "--restart", "--verify", f"{HOOK}:run(verify)")
        assert p.returncode == 0, (rep["message"], p.stderr)
        assert rep["plan"]["batches"] == [[n1.node], [n2.node]]
        # --verify's io output streams on stderr like a hook's (stdout is the JSON document)
        assert all(f"{n.node} verify| hook verify ran on {n.node}" in p.stderr for n in c.nodes)
        assert any("restart_new_emulator" in n and "__new_emulator__0.0.1" in n for n in rep["plan"]["notes"])
        for n in c.nodes:
            assert n.os_pid() != pids[n.node]
            # booted by release_handler's hybrid boot script, which then ran the rest of the relup
            assert n.script_id() == ("demo", "__new_emulator__0.0.1")
            assert not (n.root / "releases" / "__new_emulator__0.0.1").exists()     # removed once 0.0.2 ran
            assert n.releases() == {"0.0.2": "permanent", "0.0.1": "old"}
            apps = _running_apps(n)
            assert apps["stdlib"] == stdlib and apps["demo"] == "0.0.2" and apps["kernel"] == "8.5.3"
            assert n.eval_py("code:which(lists)").endswith(f"/lib/stdlib-{stdlib}/ebin/lists.beam")
            assert n.eval_py("demo_server:version()") == "0.0.2"
            assert (n.root / "releases" / "start_erl.data").read_text().split() == [demo_build.erts_vsn, "0.0.2"]
            # --verify ran on the new emulator with 0.0.2 current, not yet permanent
            verify = [r for r in hook_log(n.root) if r[0] == "verify"]
            assert verify == [("verify", n.node, n.os_pid(), [("0.0.1", "permanent"), ("0.0.2", "current")])]

        # a further restart (a crash: heart runs bin/start with no argument) boots 0.0.2's own script
        old = n1.os_pid()
        n1.kill_emulator()
        _wait_new_emulator(n1, old, c.epmd_port)
        assert n1.script_id() == ("demo", "0.0.2") and _running_apps(n1)["stdlib"] == stdlib

        # and back: the down script ends with restart_emulator, so each node reboots into 0.0.1
        on_002 = {n.node: n.os_pid() for n in c.nodes}
        p, rep = run_cli(c, "rollback", "--restart")
        assert p.returncode == 0, (rep["message"], p.stderr)
        assert rep["plan"]["direction"] == "down" and rep["plan"]["batches"] == [[n1.node], [n2.node]]
        for n in c.nodes:
            assert n.os_pid() != on_002[n.node]
            assert n.script_id() == ("demo", "0.0.1")
            assert n.releases() == {"0.0.1": "permanent", "0.0.2": "old"}
            apps = _running_apps(n)
            assert apps["stdlib"] == "4.2" and apps["demo"] == "0.0.1"
            assert n.eval_py("code:which(lists)").endswith("/lib/stdlib-4.2/ebin/lists.beam")
    finally:
        c.close()


@pytest.fixture(scope="module")
def broken_new_emulator_tar(demo_build, tmp_path_factory) -> Path:
    """demo 0.0.4 (its code_change crashes) with stdlib bumped: the new emulator boots, then the
    rest of the relup fails in release_handler:new_emulator_upgrade."""
    work = tmp_path_factory.mktemp("newemu_broken")
    new, _ = bumped_core_release(demo_build, work / "build", app="stdlib", vsn="0.0.4")
    out = work / "out" / "demo-0.0.4.tar.gz"
    make_relup(demo_build.tars["0.0.1"], new, out)
    return out


def test_new_emulator_upgrade_failing_after_the_reboot_stops_naming_the_node(demo_build, broken_new_emulator_tar,
                                                                              tmp_path):
    c = HeartCluster(demo_build, tmp_path / "hc", n=2)
    try:
        n1, n2 = c.nodes
        pids = {n.node: n.os_pid() for n in c.nodes}
        p, rep = run_cli(c, "install", "0.0.4", "--tar", str(broken_new_emulator_tar), "--restart")
        assert p.returncode == 1, rep["message"]
        res = {o["node"]: o for o in rep["nodes"]}
        assert res[n1.node]["result"] in ("failed", "rolled_back") and res[n2.node]["result"] == "untouched"
        assert rep["message"].startswith(f"install of 0.0.4 failed: {n1.node}: ")
        assert "not 0.0.4" in rep["message"] and "release_handler:new_emulator_upgrade" in rep["message"]
        assert "0.0.4 is left unpacked there" in rep["message"]
        # the code_change crash after the reboot made release_handler restart it: heart booted 0.0.1
        assert n1.os_pid() != pids[n1.node] and n1.script_id() == ("demo", "0.0.1")
        assert n1.releases() == {"0.0.1": "permanent", "0.0.4": "unpacked"}    # no temporary release left
        assert _running_apps(n1)["stdlib"] == "4.2" and n1.eval_py("demo_server:version()") == "0.0.1"
        assert n2.os_pid() == pids[n2.node] and n2.releases() == {"0.0.1": "permanent"}
    finally:
        c.close()
