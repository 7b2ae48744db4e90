"""Real hot upgrades and rollbacks of the demo release on three nodes, through the CLI.

Every assertion about the nodes is read back with erl_call, not with erldeploy.
"""

from __future__ import annotations

import io
import signal
import tarfile
import time

import pytest

from pyrlang_deploy.term import format_term, parse_term

from .conftest import bump, releases_of, server_of


@pytest.mark.parametrize("agent", [True, False], ids=["agent", "no-agent"])
def test_install_then_rollback_keeps_state(cli, demo, demo_build, agent):
    for i, n in enumerate(demo.nodes):
        bump(demo, n, i + 2)
    before = {n: server_of(demo, n)[1] for n in demo.nodes}
    extra = [] if agent else ["--no-agent"]

    p = cli("install", "0.0.2", "--tar", str(demo_build.tars["0.0.2"]), "--cluster", *extra)
    assert p.returncode == 0, p.stdout + p.stderr
    for n in demo.nodes:
        assert server_of(demo, n) == ("0.0.2", before[n])          # state kept across code_change
        assert releases_of(demo, n) == {"0.0.2": "permanent", "0.0.1": "old"}
    assert "every node runs it" in p.stdout

    p = cli("rollback", "--cluster", *extra)
    assert p.returncode == 0, p.stdout + p.stderr
    for n in demo.nodes:
        assert server_of(demo, n) == ("0.0.1", before[n])
        assert releases_of(demo, n)["0.0.1"] == "permanent"

    if agent:   # the agent leaves nothing behind
        for n in demo.nodes:
            assert demo.eval(n, "[M || {M, _} <- code:all_loaded(), "
                                "lists:prefix(\"erldeploy\", atom_to_list(M))]") == "[]"


def test_install_json_report_and_noop_rerun(cli, demo, demo_build):
    code, doc = cli.json("install", "0.0.2", "--tar", str(demo_build.tars["0.0.2"]), "--cluster")
    assert code == 0, doc
    assert doc["schema"] == "erldeploy.install/1" and doc["ok"]
    assert {n["node"]: n["result"] for n in doc["nodes"]} == {n: "permanent" for n in demo.nodes}
    assert doc["plan"]["batches"][0] == [demo.nodes[0]]             # the canary first
    code, doc = cli.json("install", "0.0.2", "--cluster")
    assert code == 0 and doc["noop"], doc


def test_broken_release_fails_on_the_canary_only(cli, demo, demo_build):
    bump(demo, demo.nodes[0], 3)
    p = cli("install", demo_build.broken, "--tar", str(demo_build.tars[demo_build.broken]), "--cluster",
            timeout=240)
    assert p.returncode == 1, p.stdout + p.stderr
    out = p.stdout + p.stderr
    canary, others = demo.nodes[0], demo.nodes[1:]
    assert canary in out and "code_change" in out
    demo.wait_started(canary)
    assert server_of(demo, canary)[0] == "0.0.1"                   # back on the old release ...
    assert demo.eval(canary, "demo:health()") == "ok"              # ... and serving
    for n in others:                                               # never touched
        assert releases_of(demo, n) == {"0.0.1": "permanent"}
        assert not list((demo.root_of(n) / "releases").glob("*.tar.gz*"))
        # unpacked ahead of their wave while the canary installed, then removed again
        assert not (demo.root_of(n) / "releases" / demo_build.broken).exists()
        assert not (demo.root_of(n) / "lib" / f"demo-{demo_build.broken}").exists()
    assert "untouched" in out


def _refused(p, *needles):
    assert p.returncode != 0, p.stdout + p.stderr
    assert len(p.stderr.strip().splitlines()) >= 1
    for needle in needles:
        assert needle in p.stderr, p.stderr


def _unchanged(demo):
    for n in demo.nodes:
        assert releases_of(demo, n) == {"0.0.1": "permanent"}
        assert server_of(demo, n)[0] == "0.0.1"
        assert not list((demo.root_of(n) / "releases").glob("*.tar.gz*"))
        # the agent loaded while preflight ran (to take inventories) is gone again
        assert demo.eval(n, "[M || {M, _} <- code:all_loaded(), "
                            "lists:prefix(\"erldeploy\", atom_to_list(M))]") == "[]"


def test_corrupt_tarball_is_refused_before_any_change(cli, demo, demo_build, tmp_path):
    bad = tmp_path / "demo-0.0.2.tar.gz"
    data = bytearray(demo_build.tars["0.0.2"].read_bytes())
    for i in range(len(data) // 2, len(data) // 2 + 64):
        data[i] ^= 0xFF
    bad.write_bytes(bytes(data))
    _refused(cli("install", "0.0.2", "--tar", str(bad), "--cluster"), "corrupt")
    _unchanged(demo)


def test_unknown_version_is_refused(cli, demo):
    _refused(cli("install", "9.9.9", "--cluster"), "9.9.9", "no tarball")
    _unchanged(demo)


def test_relup_without_entry_for_running_version_is_refused(cli, demo, demo_build, tmp_path):
    # rebuild 0.0.3's tarball with a relup that only knows 0.0.2
    src = demo_build.tars["0.0.3"]
    bad = tmp_path / "demo-0.0.3.tar.gz"
    with tarfile.open(src, "r:gz") as tin, tarfile.open(bad, "w:gz") as tout:
        for m in tin:
            f = tin.extractfile(m) if m.isfile() else None
            if m.name == "releases/0.0.3/relup":
                vsn, ups, downs = parse_term(f.read().decode().strip())
                ups = [u for u in ups if u[0] != "0.0.1"]
                body = (format_term((vsn, ups, downs)) + ".\n").encode()
                m.size = len(body)
                tout.addfile(m, io.BytesIO(body))
            else:
                tout.addfile(m, f)
    p = cli("install", "0.0.3", "--tar", str(bad), "--cluster")
    _refused(p, "no entry for the running version 0.0.1")
    _unchanged(demo)


def test_drift_is_refused(cli, demo, demo_build):
    p = cli("install", "0.0.2", "--tar", str(demo_build.tars["0.0.2"]), seed=demo.nodes[1])
    assert p.returncode == 0, p.stderr
    p = cli("install", "0.0.3", "--tar", str(demo_build.tars["0.0.3"]), "--cluster")
    _refused(p, "different releases", demo.nodes[1])
    assert releases_of(demo, demo.nodes[0]) == {"0.0.1": "permanent"}
    assert releases_of(demo, demo.nodes[1])["0.0.2"] == "permanent"


def test_node_down_at_preflight_is_refused(cli, demo, demo_build):
    down = demo.nodes[2]
    demo.kill_node(down)
    p = cli("install", "0.0.2", "--tar", str(demo_build.tars["0.0.2"]),
            "-n", demo.nodes[1], "-n", down)
    _refused(p, down)
    for n in demo.nodes[:2]:
        assert releases_of(demo, n) == {"0.0.1": "permanent"}


def test_dry_run_changes_nothing(cli, demo, demo_build):
    p = cli("install", "0.0.2", "--tar", str(demo_build.tars["0.0.2"]), "--cluster", "--dry-run")
    assert p.returncode == 0, p.stderr
    assert "batch 1" in p.stdout and demo.nodes[0] in p.stdout
    _unchanged(demo)


def test_killed_controller_then_rerun_finishes_the_job(cli, demo, demo_build):
    """SIGKILL the controller in the middle of a rolling --no-agent install, run install again."""
    tar = str(demo_build.tars["0.0.2"])
    # a slow health check holds each node in "installed, verifying" long enough to kill us there
    proc = cli.popen("install", "0.0.2", "--tar", tar, "--cluster", "--no-agent",
                     "--strategy", "rolling", "--batch", "1", "--verify", "timer:sleep(1500)")
    deadline = time.monotonic() + 60
    first = demo.nodes[0]
    while time.monotonic() < deadline:       # wait for the first node to run 0.0.2
        if releases_of(demo, first).get("0.0.2") == "current":
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    assert releases_of(demo, first).get("0.0.2") == "current"
    p = cli("install", "0.0.2", "--tar", tar, "--cluster", "--no-agent")
    assert p.returncode == 0, p.stdout + p.stderr
    for n in demo.nodes:
        assert releases_of(demo, n)["0.0.2"] == "permanent"
        assert server_of(demo, n)[0] == "0.0.2"


def test_permanent_and_remove(cli, demo, demo_build):
    p = cli("remove", "0.0.1", "--cluster")
    _refused(p, "permanent")
    assert cli("install", "0.0.2", "--tar", str(demo_build.tars["0.0.2"]), "--cluster").returncode == 0
    p = cli("remove", "0.0.2", "--cluster")
    _refused(p, "current")
    p = cli("remove", "0.0.1", "--cluster")
    assert p.returncode == 0, p.stderr
    for n in demo.nodes:
        assert "0.0.1" not in releases_of(demo, n)
    p = cli("permanent", "0.0.2", "--cluster")
    assert p.returncode == 0 and "already permanent" in p.stdout


def test_killed_controller_agent_leases_roll_every_node_back(cli, demo, demo_build):
    """Default (agent) install, SIGKILL the controller once every node runs 0.0.2 but before
    the commit: each node's lease expires and it rolls itself back, state kept."""
    for n in demo.nodes:
        bump(demo, n, 4)
    proc = cli.popen("install", "0.0.2", "--tar", str(demo_build.tars["0.0.2"]), "--cluster",
                     "--strategy", "all", "--lease", "3", "--verify", "timer:sleep(2500)")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if all(releases_of(demo, n).get("0.0.2") == "current" for n in demo.nodes):
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    killed_at = time.monotonic()
    assert all(releases_of(demo, n).get("0.0.2") == "current" for n in demo.nodes)
    while time.monotonic() - killed_at < 3 + 10:
        if all(server_of(demo, n)[0] == "0.0.1" for n in demo.nodes):
            break
        time.sleep(0.1)
    took = time.monotonic() - killed_at
    for n in demo.nodes:
        assert server_of(demo, n) == ("0.0.1", 4), n
        assert releases_of(demo, n)["0.0.1"] == "permanent"
    assert took < 3 + 5, took


@pytest.mark.parametrize("agent", [True, False], ids=["agent", "no-agent"])
def test_upload_is_idempotent_and_install_finds_the_uploaded_tarball(cli, demo, demo_build, agent):
    extra = [] if agent else ["--no-agent"]
    tar = demo_build.tars["0.0.3"]
    code, doc = cli.json("upload", str(tar), "--cluster", *extra)
    assert code == 0, doc
    assert all(not n["result"]["skipped"] for n in doc["nodes"])
    for n in demo.nodes:       # the very bytes, under the final name, no partial file left
        placed = demo.root_of(n) / "releases" / tar.name
        assert placed.read_bytes() == tar.read_bytes()
        assert not list((demo.root_of(n) / "releases").glob("*.part"))
    code, doc = cli.json("upload", str(tar), "--cluster", *extra)
    assert code == 0 and all(n["result"]["skipped"] for n in doc["nodes"]), doc
    p = cli("install", "0.0.3", "--cluster", *extra)          # no --tar: it is on the nodes
    assert p.returncode == 0, p.stdout + p.stderr
    for n in demo.nodes:
        assert server_of(demo, n)[0] == "0.0.3"


def test_wrong_cwd_is_flagged_and_fixed_for_relative_lib_paths(cli, demo, demo_build, tmp_path):
    # relx-style "./lib/..." paths in RELEASES: a node whose cwd moved cannot downgrade
    for n in demo.nodes:
        demo.eval(n, f'file:set_cwd("{tmp_path}")')
    code, doc = cli.json("status", "--cluster")
    assert not doc["nodes"][0]["cwd_ok"]     # listed as a problem; exit code is about reachability and drift
    assert "relative lib paths" in " ".join(doc["problems"])
    p = cli("install", "0.0.2", "--tar", str(demo_build.tars["0.0.2"]), "--cluster")
    assert p.returncode == 0, p.stderr
    assert "relative lib paths" in p.stderr
    assert cli("rollback", "--cluster").returncode == 0
    for n in demo.nodes:
        assert server_of(demo, n)[0] == "0.0.1"


def test_node_without_releases_file_is_adopted_by_install_like_a_mix_release(cli, demo, demo_build):
    # issue 8: such a node was refused ("no RELEASES file"); install now adopts it first
    node = demo.nodes[1]
    releases = demo.root_of(node) / "releases" / "RELEASES"
    releases.unlink()
    code, doc = cli.json("status", "--cluster")
    st = {n["node"]: n for n in doc["nodes"]}
    assert st[node]["mix_release"] and not st[node]["releases_file"] and st[node]["adoption"] == "create"
    assert f"{node}: mix release, not adopted yet (install adopts it)" in " ".join(doc["problems"])
    p = cli("install", "0.0.2", "--tar", str(demo_build.tars["0.0.2"]), "--cluster", "--dry-run")
    assert p.returncode == 0 and "adopt first" in p.stdout and node in p.stdout, p.stdout + p.stderr
    assert not releases.exists()                       # a dry run adopts nothing
    p = cli("install", "0.0.2", "--tar", str(demo_build.tars["0.0.2"]), "--cluster")
    assert p.returncode == 0, p.stdout + p.stderr
    assert releases.exists()
    libs = demo.eval(node, "[{V, length(L)} || {_, V, L, _} <- release_handler:which_releases()]")
    assert "{\"0.0.1\",0}" not in libs and "{\"0.0.2\",0}" not in libs, libs
    assert cli("rollback", "--cluster").returncode == 0      # the downgrade an invented entry crashes
    for n in demo.nodes:
        assert server_of(demo, n)[0] == "0.0.1" and releases_of(demo, n)["0.0.1"] == "permanent"


def _unchanged_except(demo, skip):
    for n in demo.nodes:
        if n != skip:
            assert releases_of(demo, n) == {"0.0.1": "permanent"}


def test_ctrl_c_during_install_rolls_back_and_tells_the_state(cli, demo, demo_build):
    proc = cli.popen("install", "0.0.2", "--tar", str(demo_build.tars["0.0.2"]), "--cluster", "--no-agent",
                     "--verify", "timer:sleep(2000)")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and releases_of(demo, demo.nodes[0]).get("0.0.2") != "current":
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 1, err
    assert "interrupted" in out + err
    for n in demo.nodes:
        assert n in out
        assert server_of(demo, n)[0] == "0.0.1"
        assert releases_of(demo, n)["0.0.1"] == "permanent"
