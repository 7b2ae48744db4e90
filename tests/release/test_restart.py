"""Restart mode (`install --restart`) and the hooks (`--before`, `--after`, `--drain`).

Real nodes: demo target systems run under heart by an OTP-style embedded start script that
boots the release named in the data file it is given (tests/support/heartnodes.py), and the
stock demo cluster (no heart, a start script that ignores its argument). The release
restarted into is demo 0.0.2 with its relup taken out of the tarball. Everything is read
back with erl_call; hooks count themselves in a file on the node (it outlives restarts).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from pyrlang_deploy.errors import UsageError
from pyrlang_deploy.release.executor_restart import relup_note, restart_relup, start_prg_problem
from pyrlang_deploy.release.hooks import HookCall, failed, parse_hook
from pyrlang_deploy.release.plan import PlanOptions, Relups, plan
from pyrlang_deploy.release.relup import Relup, parse_relup
from pyrlang_deploy.term import Atom
from tests.release.conftest import HOOK, releases_of
from tests.release.test_plan import ON_001, tar
from tests.support.heartnodes import HeartCluster

# --- pure: the relup, the start program, the plan, the hook specs --------------------------

def test_restart_relup_both_ways_keeping_other_entries():
    assert restart_relup(None, "0.0.2", "0.0.1") == (
        "0.0.2", [("0.0.1", "erldeploy restart upgrade 0.0.1 <-> 0.0.2", [Atom("restart_emulator")])],
        [("0.0.1", "erldeploy restart upgrade 0.0.1 <-> 0.0.2", [Atom("restart_emulator")])])
    existing = ("0.0.3", [("0.0.1", "", [("load_module", Atom("m"))]), ("0.0.2", "", [])],
                [("0.0.2", "", [])])
    r = parse_relup(restart_relup(existing, "0.0.3", "0.0.1"))
    assert r.up_from == {"0.0.1": ["restart_emulator"], "0.0.2": []}
    assert r.down_to == {"0.0.1": ["restart_emulator"], "0.0.2": []}
    assert r.restarts_emulator("0.0.1") and not r.restarts_emulator("0.0.2")


def test_start_program_must_read_its_argument():
    otp = b'#!/bin/sh\nSTART_ERL_DATA=${1:-$RELDIR/start_erl.data}\nexec run_erl ...\n'
    demo = b'#!/bin/sh\n# reads $1? no: only this comment mentions it\nread -r E V < "$R/releases/start_erl.data"\n' \
        b'exec erlexec -boot "$R/releases/$V/start" "$@"\n'
    assert start_prg_problem(otp, "/r/bin/start") is None
    assert "never reads its first argument" in start_prg_problem(demo, "/r/bin/start")
    assert "does not exist" in start_prg_problem(None, "/r/bin/start")
    assert start_prg_problem(b"\x7fELF...", "/r/bin/start") is None     # a binary is trusted


def test_plan_in_restart_mode_needs_no_relup():
    t = tar()
    t.relup = None
    p = plan(ON_001, t, Relups(), PlanOptions(vsn="0.0.2", restart=True))
    assert p.restart and not p.agent and p.batches == (("n1",), ("n2",), ("n3",))
    assert p.to_json()["restart"] is True
    assert any("no relup" in n and "[restart_emulator]" in n for n in p.notes)
    with pytest.raises(Exception, match="--restart installs it"):
        plan(ON_001, t, Relups(), PlanOptions(vsn="0.0.2"))
    hot = Relup("0.0.2", {"0.0.1": [("load_module", "m")]}, {"0.0.1": []})
    assert "replaced by [restart_emulator]" in relup_note(Relups(target=hot), "0.0.2", "0.0.1")


def test_hook_specs():
    assert parse_hook("before", None) is None
    h = parse_hook("before", "'Elixir.MyApp.Release':migrate()")
    assert h == HookCall("before", "Elixir.MyApp.Release", "migrate", ())
    h = parse_hook("drain", 'm:f("a)", [1, 2], {x, <<"b">>})')
    assert h.args == ("a)", [1, 2], (Atom("x"), b"b")) and h.describe() == 'm:f("a)", [1,2], {x,<<"b">>})'
    for bad in ("nocolon", "m:f(1", "m:f(1,,)"):
        with pytest.raises(UsageError, match="--after"):
            parse_hook("after", bad)
    assert failed(Atom("error")) and failed((Atom("error"), 1)) and not failed(Atom("ok")) and not failed([])


def test_environment_keys(tmp_path, monkeypatch):
    from pyrlang_deploy.cli.config import load_environment

    f = tmp_path / "erldeploy.toml"
    f.write_text('[env.prod]\nseeds = ["a@h"]\nbefore = "m:migrate()"\nafter = "m:warm()"\ndrain = "m:drain(5)"\n')
    monkeypatch.setenv("ERLDEPLOY_CONFIG", str(f))
    env = load_environment("prod")
    assert (env.before, env.after, env.drain) == ("m:migrate()", "m:warm()", "m:drain(5)")


# --- real nodes --------------------------------------------------------------------------

@pytest.fixture(scope="module")
def norelup_tar(demo_build, hook_beam, tmp_path_factory) -> Path:
    """demo 0.0.2 as systools made it, without releases/0.0.2/relup, plus the hook module."""
    out = tmp_path_factory.mktemp("norelup") / "demo-0.0.2.tar.gz"
    with tarfile.open(demo_build.tars["0.0.2"]) as src, tarfile.open(out, "w:gz") as dst:
        for m in src.getmembers():
            if m.name != "releases/0.0.2/relup":
                dst.addfile(m, src.extractfile(m) if m.isfile() else None)
        dst.add(hook_beam, arcname=f"lib/demo-0.0.2/ebin/{HOOK}.beam")
    return out


def run_cli(cluster: HeartCluster, *args: str, timeout: float = 600) -> tuple[subprocess.CompletedProcess, dict]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ERLDEPLOY_")}
    env.update(ERLDEPLOY_COOKIE=cluster.cookie, ERL_EPMD_PORT=str(cluster.epmd_port), HOME=str(cluster.workdir),
               COLUMNS="200")
    targets = [a for n in cluster.nodes for a in ("-n", n.node)]
    p = subprocess.run([sys.executable, "-m", "pyrlang_deploy.cli.main", *args, *targets, "--json"],
                       capture_output=True, text=True, env=env, timeout=timeout)
    assert "Traceback" not in p.stderr, p.stderr
    assert cluster.cookie not in p.stdout + p.stderr
    return p, json.loads(p.stdout)


def hook_log(root: Path) -> list[tuple]:
    """The hook calls recorded on a node: (slot, node, os pid, sorted [{vsn, state}])."""
    f = root / "hooks.log"
    if not f.exists():
        return []
    rows = []
    text = "".join(f.read_text().split())     # ~p breaks long terms over lines; nothing here has spaces
    for m in re.finditer(r"\{'?(\w+)'?,'([^']+)',\"(\d+)\",\[(.*?)\]\}\.", text):
        rels = [(v, s) for v, s in re.findall(r'\{"([^"]+)",(\w+)\}', m[4])]
        rows.append((m[1], m[2], m[3], rels))
    assert len(rows) == text.count("}]}."), text
    return rows


@pytest.fixture
def heart3(demo_build, hook_beam, tmp_path):
    c = HeartCluster(demo_build, tmp_path / "hc", n=3, extra_beams=[hook_beam])
    try:
        yield c
    finally:
        c.close()


def test_rolling_restart_into_a_release_without_relup_with_hooks(heart3, norelup_tar):
    c = heart3
    n1, n2, n3 = c.nodes
    pids = {n.node: n.os_pid() for n in c.nodes}
    p, rep = run_cli(c, "install", "0.0.2", "--tar", str(norelup_tar), "--restart",
                     "--before", f"{HOOK}:run(before)", "--after", f"{HOOK}:run(after)",
                     "--drain", f"{HOOK}:run(drain)", "--verify", f"{HOOK}:locked()")
    assert p.returncode == 0, (rep["message"], p.stderr)
    assert rep["plan"]["restart"] is True and rep["plan"]["batches"] == [[n1.node], [n2.node], [n3.node]]
    assert [o["result"] for o in rep["nodes"]] == ["permanent"] * 3
    for n in c.nodes:    # each node is a new emulator, booted from 0.0.2, which is permanent
        assert n.os_pid() != pids[n.node]
        assert n.script_id() == ("demo", "0.0.2")
        assert n.releases() == {"0.0.2": "permanent", "0.0.1": "old"}
        assert n.eval_py("demo_server:version()") == "0.0.2"
        assert (n.root / "releases" / "0.0.2" / "relup").read_text().count("restart_emulator") == 2

    logs = {n.node: hook_log(n.root) for n in c.nodes}
    before = [r for rows in logs.values() for r in rows if r[0] == "before"]
    after = [r for rows in logs.values() for r in rows if r[0] == "after"]
    drains = [r for rows in logs.values() for r in rows if r[0] == "drain"]
    # before: once, on the first node, on its old emulator, before anything changed (not even unpacked)
    assert before == [("before", n1.node, pids[n1.node], [("0.0.1", "permanent")])]
    # after: once, after every node is permanent (on the new emulator)
    assert len(after) == 1 and after[0][1] == n1.node and after[0][3] == [("0.0.1", "old"), ("0.0.2", "permanent")]
    # drain: once per node, on the old emulator, with 0.0.2 unpacked and not yet running
    assert sorted(drains) == sorted(("drain", n.node, pids[n.node], [("0.0.1", "permanent"), ("0.0.2", "unpacked")])
                                    for n in c.nodes)
    # the deploy lock died with each old emulator and was taken again before the verify
    locked = sorted(r for rows in logs.values() for r in rows if r[0] == "locked")
    assert locked == sorted(("locked", n.node, n.os_pid(), [("lock", "held")]) for n in c.nodes), locked
    assert [h["slot"] for h in rep["hooks"]] == ["before", "drain", "drain", "drain", "after"]
    # the hooks' io output streamed back (stderr with --json) and is in the report
    assert f"{n1.node} before| hook before ran on {n1.node}" in p.stderr
    assert all(f"hook drain ran on {n.node}" in p.stderr for n in c.nodes)
    assert rep["hooks"][-1]["output"] == f"hook after ran on {n1.node}\n"

    # a crash now: heart restarts the node by bin/start with no argument, into the permanent 0.0.2
    old = n3.os_pid()
    n3.kill_emulator()
    _wait_new_emulator(n3, old, c.epmd_port)
    assert n3.script_id() == ("demo", "0.0.2")


def _wait_new_emulator(n, old_pid: str, epmd_port: int, timeout: float = 120) -> None:
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if n.booted() and n.os_pid() != old_pid:
                return
        except Exception:
            pass
        time.sleep(0.5)
    raise AssertionError(f"{n.node} did not come back: {n.log_tail()}")


def test_failed_drain_stops_and_the_restarted_node_is_restarted_back(demo_build, hook_beam, norelup_tar, tmp_path):
    c = HeartCluster(demo_build, tmp_path / "hc", n=2, extra_beams=[hook_beam])
    try:
        n1, n2 = c.nodes
        pids = {n.node: n.os_pid() for n in c.nodes}
        p, rep = run_cli(c, "install", "0.0.2", "--tar", str(norelup_tar), "--restart",
                         "--drain", f"{HOOK}:run(drain, '{n2.node}')", "--after", f"{HOOK}:run(after)")
        assert p.returncode == 1
        res = {o["node"]: o for o in rep["nodes"]}
        assert res[n1.node]["result"] == "rolled_back" and res[n1.node]["current"] == "0.0.1"
        assert res[n2.node]["result"] == "failed" and "refused_on" in res[n2.node]["error"]
        assert n2.node in rep["message"] and "Now:" in rep["message"]
        # n1 went to 0.0.2 and was restarted back into the permanent 0.0.1; n2 never restarted
        assert n1.os_pid() != pids[n1.node] and n1.script_id() == ("demo", "0.0.1")
        assert n1.releases()["0.0.1"] == "permanent"
        assert n2.os_pid() == pids[n2.node] and n2.releases() == {"0.0.1": "permanent", "0.0.2": "unpacked"}
        assert not any(r[0] == "after" for n in c.nodes for r in hook_log(n.root))     # --after never ran
    finally:
        c.close()


def test_refusals_and_hooks_on_the_stock_demo_cluster(demo, cli, demo_build, norelup_tar):
    """No heart and a start script that ignores its argument: --restart is refused naming each
    node; a failing --before changes nothing; a failing --after is reported with the state."""
    p = cli("install", "0.0.2", "--cluster", "--tar", str(norelup_tar), "--restart")
    assert p.returncode == 1
    for node in demo.nodes:
        assert f"{node}: heart is not running" in p.stderr
    assert "never reads its first argument" in p.stderr and "bin/start" in p.stderr and "HEART_COMMAND" in p.stderr
    p = cli("install", "0.0.2", "--tar", str(norelup_tar))
    assert p.returncode == 1 and "--restart installs it" in p.stderr

    hot = str(demo_build.tars["0.0.2"])
    p = cli("install", "0.0.2", "--cluster", "--tar", hot, "--before", "erlang:error(migration_failed)")
    assert p.returncode == 1 and "--before hook erlang:error(migration_failed) failed" in p.stderr
    assert "nothing was changed" in p.stderr
    for node in demo.nodes:
        assert releases_of(demo, node) == {"0.0.1": "permanent"}
        assert not list((demo.root_of(node) / "releases").glob("*.tar.gz"))

    p = cli("install", "0.0.2", "--cluster", "--tar", hot, "--before", 'file:write_file("before.log", <<"x">>, [append])',
            "--after", "erlang:error(cache_warm_failed)")
    assert p.returncode == 1, p.stdout
    assert "--after hook erlang:error(cache_warm_failed) failed" in p.stderr and "permanent" in p.stderr
    for node in demo.nodes:
        assert releases_of(demo, node) == {"0.0.2": "permanent", "0.0.1": "old"}
    written = {n: (demo.root_of(n) / "before.log").read_text() for n in demo.nodes
               if (demo.root_of(n) / "before.log").exists()}
    assert list(written.values()) == ["x"]      # once, on one node


# --- going back on restart-upgraded nodes (`rollback --restart`) ---------------------------

def _running_apps(n) -> dict[str, str]:
    return dict(n.eval_py("[[atom_to_list(A), V] || {A, _, V} <- application:which_applications()]"))


@pytest.fixture
def restarted_to_002(demo_build, norelup_tar, tmp_path):
    """Two heart nodes moved 0.0.1 -> 0.0.2 by `install --restart` (a relup of [restart_emulator])."""
    c = HeartCluster(demo_build, tmp_path / "hc", n=2)
    try:
        p, rep = run_cli(c, "install", "0.0.2", "--tar", str(norelup_tar), "--restart")
        assert p.returncode == 0, (rep["message"], p.stderr)
        assert all(n.releases() == {"0.0.2": "permanent", "0.0.1": "old"} for n in c.nodes)
        yield c
    finally:
        c.close()


def test_rollback_restart_goes_back_node_by_node_through_heart(restarted_to_002):
    c = restarted_to_002
    n1, n2 = c.nodes
    on_002 = {n.node: n.os_pid() for n in c.nodes}

    # a hot rollback would reboot every node through the down entry [restart_emulator]: refused
    p, rep = run_cli(c, "rollback")
    msg = rep["error"]["message"]
    assert p.returncode == 1 and "\n" not in msg.strip() and "\n" not in p.stderr.strip(), p.stderr
    assert "releases/0.0.2/relup's entry 0.0.2 -> 0.0.1 restarts the emulator (restart_emulator)" in msg
    assert "run it with --restart" in msg
    assert {n.node: n.os_pid() for n in c.nodes} == on_002

    p, rep = run_cli(c, "rollback", "--restart", "--verify", "application:ensure_started(demo)")
    assert p.returncode == 0, (rep["message"], p.stderr)
    assert rep["action"] == "rollback" and rep["plan"]["direction"] == "down"
    assert rep["plan"]["batches"] == [[n1.node], [n2.node]]       # one node at a time
    assert [o["result"] for o in rep["nodes"]] == ["permanent"] * 2
    for n in c.nodes:   # a new emulator, booted from 0.0.1, which is permanent again
        assert n.os_pid() != on_002[n.node]
        assert n.script_id() == ("demo", "0.0.1")
        assert n.releases() == {"0.0.1": "permanent", "0.0.2": "old"}
        assert _running_apps(n)["demo"] == "0.0.1" and n.eval_py("demo_server:version()") == "0.0.1"
        assert (n.root / "releases" / "start_erl.data").read_text().split()[1] == "0.0.1"
        # the down entry the install wrote was used as it is; 0.0.1 gained no invented relup
        assert not (n.root / "releases" / "0.0.1" / "relup").exists()
    # a further restart (a crash: heart runs bin/start with no argument) boots 0.0.1
    old = n2.os_pid()
    n2.kill_emulator()
    _wait_new_emulator(n2, old, c.epmd_port)
    assert n2.script_id() == ("demo", "0.0.1") and n2.releases()["0.0.1"] == "permanent"


LIAR = """#!/bin/sh
# reads its argument, then boots the permanent release whatever it was given
DATA_FILE="$1"
exec {root}/bin/start.real
"""


def test_rollback_restart_failures_name_the_node(restarted_to_002):
    c = restarted_to_002
    n1, n2 = c.nodes
    pids = {n.node: n.os_pid() for n in c.nodes}

    # n2's start program never reads its argument: refused before any node changes
    start = n2.root / "bin" / "start"
    good = start.read_text()
    start.write_text(good.replace("${1:-$RELDIR/start_erl.data}", "$RELDIR/start_erl.data"))
    p, rep = run_cli(c, "rollback", "--restart")
    msg = rep["error"]["message"]
    assert p.returncode == 1 and "\n" not in p.stderr.strip(), p.stderr
    assert f"{n2.node}: its start program {start} never reads its first argument" in msg
    assert n1.node not in msg.split("restart mode needs heart:")[1].split(". To fix")[0]
    assert {n.node: n.os_pid() for n in c.nodes} == pids
    assert all(n.releases() == {"0.0.2": "permanent", "0.0.1": "old"} for n in c.nodes)
    start.write_text(good)

    # n1's start program passes the check but boots the permanent release: n1 comes back on
    # 0.0.2, the run stops there, n2 is not touched
    (n1.root / "bin" / "start").rename(n1.root / "bin" / "start.real")
    (n1.root / "bin" / "start").write_text(LIAR.format(root=n1.root))
    (n1.root / "bin" / "start").chmod(0o755)
    p, rep = run_cli(c, "rollback", "--restart")
    assert p.returncode == 1, rep["message"]
    res = {o["node"]: o for o in rep["nodes"]}
    assert f"{n1.node}: came back running 0.0.2 (permanent 0.0.2), not 0.0.1" in rep["message"]
    assert "did not boot releases/new_start_erl.data" in res[n1.node]["error"]
    assert res[n2.node]["result"] == "untouched"
    assert n1.os_pid() != pids[n1.node] and n1.script_id() == ("demo", "0.0.2")
    # release_handler's tmp_current 0.0.1 became unpacked when another release booted
    assert n1.releases() == {"0.0.2": "permanent", "0.0.1": "unpacked"}
    assert "0.0.1 is left unpacked there: once fixed, run it again naming 0.0.1" in res[n1.node]["error"]
    assert n2.os_pid() == pids[n2.node] and n2.releases() == {"0.0.2": "permanent", "0.0.1": "old"}

    # the start program fixed, the retry naming 0.0.1 takes both nodes back
    (n1.root / "bin" / "start.real").rename(n1.root / "bin" / "start")
    p, rep = run_cli(c, "rollback", "0.0.1", "--restart")
    assert p.returncode == 0, (rep["message"], p.stderr)
    for n in c.nodes:
        assert n.script_id() == ("demo", "0.0.1") and n.releases() == {"0.0.1": "permanent", "0.0.2": "old"}
