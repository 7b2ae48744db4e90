"""The demo releases and the local demo cluster, proven on real OTP nodes.

These tests also pin down release_handler behaviour the installer relies on:
return values and which_releases states at every step of an upgrade, a
downgrade, a skipped version, and a release whose code_change crashes.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "scripts"))

import demo_cluster  # noqa: E402
import demo_releases  # noqa: E402

WHICH = "[{V, S} || {_, V, _, S} <- release_handler:which_releases()]"
SERVER = "{demo_server:version(), demo_server:count(), demo_server:get_state()}"


def unique_prefix() -> str:
    return f"fx{os.getpid()}{secrets.token_hex(3)}n"


@pytest.fixture(scope="module")
def demo_build() -> demo_releases.DemoBuild:
    return demo_releases.build()


@pytest.fixture(scope="module")
def cluster(demo_build, tmp_path_factory):
    started = time.monotonic()
    c = demo_cluster.start_cluster(demo_build, tmp_path_factory.mktemp("cluster"), n=3,
                                   name_prefix=unique_prefix())
    c.start_seconds = time.monotonic() - started
    try:
        yield c
    finally:
        c.stop()


def upload(cluster, node: str, tar: Path) -> None:
    """What a deploy tool does first: put the package into the node's releases dir."""
    shutil.copy(tar, cluster.root_of(node) / "releases")


# --- the build ------------------------------------------------------------------

def test_build_outputs(demo_build):
    assert demo_build.versions == ["0.0.1", "0.0.2", "0.0.3", "0.0.4"]
    assert demo_build.broken == "0.0.4"
    assert demo_build.otp_release == "25"
    for vsn, tar in demo_build.tars.items():
        assert tar.name == f"demo-{vsn}.tar.gz"
        with tarfile.open(tar) as t:
            names = set(t.getnames())
        assert {f"releases/{vsn}/demo-{vsn}.rel", f"releases/{vsn}/start.boot",
                f"releases/{vsn}/sys.config", f"lib/demo-{vsn}/ebin/demo_server.beam",
                f"lib/demo-{vsn}/ebin/demo.app"} <= names
        assert (f"releases/{vsn}/relup" in names) == (vsn != "0.0.1")
    target = demo_build.target
    assert (target / "bin" / "start").stat().st_mode & 0o111
    assert (target / "releases" / "start_erl.data").read_text() == f"{demo_build.erts_vsn} 0.0.1\n"
    assert (target / f"erts-{demo_build.erts_vsn}" / "bin" / "erlexec").is_file()
    assert '"./lib/demo-0.0.1"' in (target / "releases" / "RELEASES").read_text()


def test_build_is_cached(demo_build):
    started = time.monotonic()
    again = demo_releases.build()
    assert time.monotonic() - started < 1.0
    assert again == demo_build


def test_relups_go_up_from_and_down_to_every_earlier_version(cluster, demo_build):
    node = cluster.nodes[0]
    for vsn in demo_build.versions[1:]:
        relup = demo_build.release_dir(vsn) / "relup"
        got = cluster.eval(node, f'{{ok, [{{V, Up, Down}}]}} = file:consult("{relup}"), '
                                 '{V, lists:sort([F || {F, _, _} <- Up]), lists:sort([T || {T, _, _} <- Down])}')
        earlier = demo_build.versions[:demo_build.versions.index(vsn)]
        quoted = ",".join(f'"{e}"' for e in earlier)
        assert got == f'{{"{vsn}",[{quoted}],[{quoted}]}}'


# --- the cluster ------------------------------------------------------------------

def test_cluster_is_up(cluster):
    assert cluster.start_seconds < 10
    assert len(set(cluster.pids)) == 3 and cluster.epmd_pid is not None
    registered = demo_cluster.epmd_names(cluster.epmd_port)
    for node, root, pid in zip(cluster.nodes, cluster.roots, cluster.pids):
        assert node.split("@")[0] in registered
        others = sorted(n for n in cluster.nodes if n != node)
        assert cluster.eval(node, "lists:sort(nodes())") == "[" + ",".join(f"'{o}'" for o in others) + "]"
        assert cluster.eval(node, WHICH) == '[{"0.0.1",permanent}]'
        assert cluster.eval(node, "{demo_server:version(), demo:health()}") == '{"0.0.1",ok}'
        # release_handler works on this node's own copy, run from its root
        assert cluster.eval(node, "{code:root_dir(), file:get_cwd(), os:getpid()}") == \
            f'{{"{root}",{{ok,"{root}"}},"{pid}"}}'
        assert cluster.eval(node, "lists:keymember(sasl, 1, application:which_applications())") == "true"


def test_hot_upgrade_and_downgrade(cluster, demo_build):
    node = cluster.nodes[0]
    ev = lambda expr: cluster.eval(node, expr)  # noqa: E731
    for _ in range(3):
        ev("demo_server:bump()")
    assert ev(SERVER) == '{"0.0.1",3,{state,3,[{"0.0.1",3},{"0.0.1",2},{"0.0.1",1}]}}'

    upload(cluster, node, demo_build.tars["0.0.2"])
    assert ev('release_handler:unpack_release("demo-0.0.2")') == '{ok,"0.0.2"}'
    assert not (cluster.root_of(node) / "releases" / "demo-0.0.2.tar.gz").exists()  # unpack deletes it
    assert ev(WHICH) == '[{"0.0.2",unpacked},{"0.0.1",permanent}]'
    assert ev('release_handler:check_install_release("0.0.2")') == '{ok,"0.0.1",[]}'

    # up: {ok, FromVsn, Descr}; the state keeps its count and becomes a map
    assert ev('release_handler:install_release("0.0.2")') == '{ok,"0.0.1",[]}'
    assert ev(WHICH) == '[{"0.0.2",current},{"0.0.1",permanent}]'
    assert ev(SERVER) == '{"0.0.2",3,#{count => 3,history => [{"0.0.1",3},{"0.0.1",2},{"0.0.1",1}]}}'
    assert ev("demo:health()") == "ok"
    assert ev('release_handler:make_permanent("0.0.2")') == "ok"
    assert ev(WHICH) == '[{"0.0.2",permanent},{"0.0.1",old}]'
    assert (cluster.root_of(node) / "releases" / "start_erl.data").read_text().split() == \
        [demo_build.erts_vsn, "0.0.2"]
    assert ev("demo_server:bump()") == "4"

    # down through the relup's down section: {ok, ToVsn, Descr}; back to a tuple
    assert ev('release_handler:install_release("0.0.1")') == '{ok,"0.0.1",[]}'
    assert ev(WHICH) == '[{"0.0.2",permanent},{"0.0.1",current}]'
    assert ev(SERVER) == '{"0.0.1",4,{state,4,[{"0.0.2",4},{"0.0.1",3},{"0.0.1",2},{"0.0.1",1}]}}'
    assert ev('release_handler:make_permanent("0.0.1")') == "ok"
    assert ev(WHICH) == '[{"0.0.2",old},{"0.0.1",permanent}]'
    # the old code came from this node's own lib dir (RELEASES lists ./lib/..., cwd = root)
    assert ev("code:which(demo_server)") == f'"{cluster.root_of(node)}/lib/demo-0.0.1/ebin/demo_server.beam"'


def test_direct_upgrade_skipping_a_version(cluster, demo_build):
    node = cluster.nodes[1]
    ev = lambda expr: cluster.eval(node, expr)  # noqa: E731
    ev("demo_server:bump()")
    upload(cluster, node, demo_build.tars["0.0.3"])
    assert ev('release_handler:unpack_release("demo-0.0.3")') == '{ok,"0.0.3"}'
    assert ev('release_handler:install_release("0.0.3")') == '{ok,"0.0.1",[]}'
    assert ev(WHICH) == '[{"0.0.3",current},{"0.0.1",permanent}]'
    assert ev(SERVER) == '{"0.0.3",1,#{count => 1,history => [{"0.0.1",1}],last_bump => none}}'
    # back to the permanent release without make_permanent: 0.0.3 becomes old
    assert ev('release_handler:install_release("0.0.1")') == '{ok,"0.0.1",[]}'
    assert ev(WHICH) == '[{"0.0.3",old},{"0.0.1",permanent}]'
    assert ev(SERVER) == '{"0.0.1",1,{state,1,[{"0.0.1",1}]}}'


def test_broken_release_fails_and_node_restarts_into_permanent(cluster, demo_build):
    node = cluster.nodes[2]
    ev = lambda expr: cluster.eval(node, expr)  # noqa: E731
    ev("demo_server:bump()")
    pid = ev("os:getpid()")
    upload(cluster, node, demo_build.tars["0.0.4"])
    assert ev('release_handler:unpack_release("demo-0.0.4")') == '{ok,"0.0.4"}'
    # check_install_release cannot see it: code_change runs after point_of_no_return
    assert ev('release_handler:check_install_release("0.0.4")') == '{ok,"0.0.1",[]}'

    # install_release answers {error, ...} and then restarts the node in place
    # (init:restart: same OS pid, every connection drops, state is lost)
    assert ev('case release_handler:install_release("0.0.4") of '
              '{error, {code_change_failed, _Pid, demo_server, "0.0.1", '
              '{\'EXIT\', {broken_on_purpose, _Stack}}}} -> matched; Other -> Other end') == "matched"
    waited = cluster.wait_started(node)
    assert waited < 20
    assert ev("os:getpid()") == pid
    assert ev(WHICH) == '[{"0.0.4",unpacked},{"0.0.1",permanent}]'
    assert ev("{demo_server:version(), demo_server:count(), demo:health()}") == '{"0.0.1",0,ok}'
    others = ",".join(f"'{n}'" for n in cluster.nodes[:2])
    # it rejoins the cluster by itself (-kernel sync_nodes_optional)
    deadline = time.monotonic() + 10
    while ev("lists:sort(nodes())") != f"[{others}]":
        assert time.monotonic() < deadline
        time.sleep(0.1)


def test_eval_reports_exceptions(cluster):
    with pytest.raises(demo_cluster.ClusterError, match="error,badarith"):
        cluster.eval(cluster.nodes[0], "1 + list_to_atom(\"a\")")
    with pytest.raises(demo_cluster.ClusterError, match="raised"):
        cluster.eval(cluster.nodes[0], "1 +")      # a syntax error
    # quotes and unicode survive the round trip; a trailing dot is optional
    assert cluster.eval(cluster.nodes[0], 'X = <<"é\\""/utf8>>, {X, "ü", \'a b\'}.') == \
        '{<<"é\\""/utf8>>,"ü",\'a b\'}'


def test_own_epmd_and_a_killed_node(tmp_path, demo_build):
    """Callers may bring their own epmd: it is used, and left running by stop()."""
    port = demo_cluster.free_port()
    epmd = demo_cluster.start_epmd(port, tmp_path / "epmd.log")
    try:
        c = demo_cluster.start_cluster(demo_build, tmp_path / "c", n=2, epmd_port=port,
                                       name_prefix=unique_prefix())
        try:
            assert c.epmd_pid is None and c.epmd_port == port
            c.kill_node(c.nodes[1])
            with pytest.raises(demo_cluster.ClusterError, match="failed to connect"):
                c.eval(c.nodes[1], "ok")
            assert c.eval(c.nodes[0], "ok") == "ok"
        finally:
            c.stop()
        assert processes_under(tmp_path / "c") == []
        assert demo_cluster.epmd_names(port) == {}
    finally:
        demo_cluster.kill_proc(epmd)


# --- the command line -------------------------------------------------------------

def test_cli_start_status_stop(tmp_path, demo_build):
    script = [sys.executable, str(REPO / "scripts" / "demo_cluster.py")]
    port = demo_cluster.free_port()
    opts = ["--dir", str(tmp_path), "--nodes", "2", "--prefix", unique_prefix(),
            "--epmd-port", str(port), "--names", "short"]
    try:
        started = subprocess.run(script + ["start"] + opts, capture_output=True, text=True, timeout=60)
        assert started.returncode == 0, started.stderr
        state = json.loads((tmp_path / "cluster.json").read_text())
        assert state["epmd_port"] == port and len(state["pids"]) == 2
        assert "cookie" not in state and oct(Path(state["cookie_path"]).stat().st_mode)[-3:] == "400"
        status = subprocess.run(script + ["status", "--dir", str(tmp_path)], capture_output=True,
                                text=True, timeout=60)
        assert status.returncode == 0, status.stdout + status.stderr
        assert len(re.findall(r'\[\{"0.0.1",permanent\}\],"0.0.1",0', status.stdout)) == 2
        stopped = subprocess.run(script + ["stop", "--dir", str(tmp_path)], capture_output=True,
                                 text=True, timeout=60)
        assert stopped.returncode == 0, stopped.stderr
        assert not (tmp_path / "cluster.json").exists()
        for pid in state["pids"] + [state["epmd_pid"]]:
            assert demo_cluster._cmdline(pid) == "", pid
        assert processes_under(tmp_path) == []
    finally:
        if (tmp_path / "cluster.json").exists():
            demo_cluster.Cluster.load(tmp_path).stop()


def processes_under(path: Path) -> list[int]:
    """Pids whose executable lives under `path` (beam, erl_child_setup, inet_gethost)."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and str(path) in os.readlink(proc / "exe"):
                found.append(int(proc.name))
        except OSError:
            pass
    return found
