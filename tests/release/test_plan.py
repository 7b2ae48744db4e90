"""plan() decided from literal facts: no node, no RPC (like h11's state-table tests)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pyrlang_deploy.errors import PreflightError, UsageError
from pyrlang_deploy.release.layouts import Layout
from pyrlang_deploy.release.plan import STRATEGIES, NodeFacts, PlanOptions, Relups, batches, plan
from pyrlang_deploy.release.relup import Relup
from pyrlang_deploy.release.status import NodeStatus, ReleaseInfo
from pyrlang_deploy.release.tarball import TarballInfo


def node(name: str, *rels: tuple[str, str], erts: str = "13.1", **kw) -> NodeStatus:
    kw = {"releases_file": True, "release_handler": True, **kw}
    return NodeStatus(node=name, erts_version=erts, root_dir=f"/r/{name}", releases_dir=f"/r/{name}/releases",
                      cwd=f"/r/{name}", releases=[ReleaseInfo("demo", v, s, ["lib"]) for v, s in rels], **kw)


def tar(vsn: str = "0.0.2", *, up=("0.0.1",), down=("0.0.1",), name: str = "demo", erts: str = "13.1",
        instrs=()) -> TarballInfo:
    relup = Relup(vsn, {v: list(instrs) for v in up}, {v: list(instrs) for v in down})
    return TarballInfo(path=Path(f"/t/{name}-{vsn}.tar.gz"), name=name, vsn=vsn, erts=erts, apps={"demo": vsn},
                       relup=relup, size=10, sha256="", md5="", layout=SYSTOOLS(name, vsn))


def SYSTOOLS(name: str, vsn: str) -> Layout:
    return Layout("systools", name, vsn, f"{name}-{vsn}", None)


ON_001 = [node(f"n{i}", ("0.0.1", "permanent")) for i in range(1, 4)]
OPTS = PlanOptions(vsn="0.0.2")


def test_canary_then_batches_with_upload_and_unpack_everywhere():
    p = plan(ON_001, tar(), Relups(), OPTS)
    assert p.batches == (("n1",), ("n2",), ("n3",))
    assert p.direction == "up" and p.from_vsn == "0.0.1" and p.release == "demo"
    assert p.need_upload == p.need_unpack == ("n1", "n2", "n3")
    assert p.agent and p.unpack_name == "demo-0.0.2" and dict(p.expected_apps) == {"demo": "0.0.2"}
    assert p.to_json()["batches"] == [["n1"], ["n2"], ["n3"]]


def test_plan_is_frozen():
    p = plan(ON_001, tar(), Relups(), OPTS)
    with pytest.raises(AttributeError):
        p.agent = False


@pytest.mark.parametrize("strategy,batch,want", [
    ("canary", 2, (("a",), ("b", "c"), ("d",))),
    ("rolling", 2, (("a", "b"), ("c", "d"))),
    ("all", 1, (("a", "b", "c", "d"),)),
])
def test_batches(strategy, batch, want):
    assert batches(["a", "b", "c", "d"], strategy, batch) == want


def test_strategy_names_have_one_home():
    assert STRATEGIES == ("canary", "rolling", "all")
    with pytest.raises(UsageError, match="canary, rolling or all"):
        batches(["a"], "yolo", 1)


def test_drift_is_refused_naming_who_runs_what():
    sts = ON_001[:2] + [node("n3", ("0.0.2", "permanent"), ("0.0.1", "old"))]
    with pytest.raises(PreflightError, match=r"different releases \(0.0.1 on n1, n2; 0.0.2 on n3\)"):
        plan(sts, tar("0.0.3", up=("0.0.1", "0.0.2"), down=("0.0.1", "0.0.2")), Relups(), PlanOptions(vsn="0.0.3"))


def test_already_permanent_everywhere_is_a_noop():
    sts = [node("n1", ("0.0.2", "permanent"), ("0.0.1", "old"))]
    p = plan(sts, None, Relups(), OPTS)
    assert p.noop and p.already_permanent == ("n1",)


def test_half_done_install_is_verified_not_reinstalled():
    sts = [node("n1", ("0.0.2", "current"), ("0.0.1", "permanent")), node("n2", ("0.0.1", "permanent"))]
    p = plan(sts, tar(), Relups(), OPTS)
    assert p.installed_not_permanent == ("n1",) and p.batches == (("n2",),)
    assert p.need_unpack == ("n2",) and p.to_change == ("n1", "n2")


def test_node_problems_are_refused_before_anything_else():
    sts = [node("n1", ("0.0.1", "permanent")), NodeStatus(node="n2", reachable=False, error="boom"),
           node("n3", ("0.0.1", "permanent"), releases_file=False)]
    with pytest.raises(PreflightError) as e:
        plan(sts, tar("9.9.9"), Relups(), OPTS)     # the tarball is wrong too: nodes come first
    assert "n2: unreachable (boom)" in str(e.value) and "n3: no RELEASES file" in str(e.value)


def test_tarball_of_another_version_or_release_is_refused():
    with pytest.raises(PreflightError, match="holds release demo 0.0.3, not 0.0.2"):
        plan(ON_001, tar("0.0.3"), Relups(), OPTS)
    with pytest.raises(PreflightError, match="is release other, the nodes run demo"):
        plan(ON_001, tar(name="other"), Relups(), OPTS)


def test_no_tarball_needs_the_staged_one_on_every_node():
    with pytest.raises(PreflightError, match="not on n2, n3 and no tarball"):
        plan(ON_001, None, Relups(target=tar().relup), OPTS, staged=frozenset({"n1"}))
    p = plan(ON_001, None, Relups(target=tar().relup), OPTS, staged=frozenset({"n1", "n2", "n3"}),
             staged_layout=SYSTOOLS("demo", "0.0.2"))
    assert p.need_upload == () and p.need_unpack == ("n1", "n2", "n3") and p.unpack_name == "demo-0.0.2"


def test_relup_without_the_running_version_or_without_down_is_refused():
    with pytest.raises(PreflightError, match="no entry for the running version 0.0.1"):
        plan(ON_001, tar(up=("0.0.0",)), Relups(), OPTS)
    with pytest.raises(PreflightError, match="no down instructions"):
        plan(ON_001, tar(down=()), Relups(), OPTS)
    t = tar()
    t.relup = None
    with pytest.raises(PreflightError, match="missing relup"):
        plan(ON_001, t, Relups(), OPTS)


def test_downgrade_through_the_running_release_relup():
    sts = [node("n1", ("0.0.2", "permanent"), ("0.0.1", "old"))]
    running = Relup("0.0.2", {"0.0.1": []}, {"0.0.1": []})
    p = plan(sts, None, Relups(target=None, running=running), PlanOptions(vsn="0.0.1"))
    assert p.direction == "down" and p.need_unpack == () and p.batches == (("n1",),)


def test_a_relup_that_restarts_the_emulator_needs_restart_mode():
    """A hot install whose relup entry reboots the node is refused with the hint; --restart takes it."""
    for instrs, how in ((["restart_emulator"], "restart_emulator"),
                        (["restart_new_emulator", ("load_module", "m")], "restart_new_emulator")):
        with pytest.raises(PreflightError, match=rf"releases/0.0.2/relup's entry 0.0.1 -> 0.0.2 restarts the "
                                                 rf"emulator \({how}\).*run it with --restart"):
            plan(ON_001, tar(instrs=instrs, erts="14.0"), Relups(), OPTS)
        p = plan(ON_001, tar(instrs=instrs, erts="14.0"), Relups(), PlanOptions(vsn="0.0.2", restart=True))
        assert p.restart and not p.agent and any("needs ERTS 14.0" in n for n in p.notes)
        assert any("releases/0.0.2/relup's entry for 0.0.1 restarts the emulator already" in n for n in p.notes)
    # going back through a down entry that restarts (an earlier `install --restart` wrote it)
    sts = [node("n1", ("0.0.2", "permanent"), ("0.0.1", "old"))]
    running = Relup("0.0.2", {"0.0.1": ["restart_emulator"]}, {"0.0.1": ["restart_emulator"]})
    with pytest.raises(PreflightError, match=r"releases/0.0.2/relup's entry 0.0.2 -> 0.0.1 restarts"):
        plan(sts, None, Relups(running=running), PlanOptions(vsn="0.0.1"))
    p = plan(sts, None, Relups(running=running), PlanOptions(vsn="0.0.1", restart=True))
    assert p.direction == "down" and any("releases/0.0.2/relup's entry for 0.0.1 restarts" in n for n in p.notes)
    # no relup either way: an old release is gone back to through the running release's file
    p = plan(sts, None, Relups(), PlanOptions(vsn="0.0.1", restart=True))
    assert p.direction == "down"
    assert any("releases/0.0.2/relup's entry for 0.0.1 is written as [restart_emulator]" in n for n in p.notes)


def test_dry_run_notes_where_check_install_runs_later():
    p = plan(ON_001, tar(), Relups(), PlanOptions(vsn="0.0.2", dry_run=True))
    assert p.notes[-1].startswith("check_install_release runs after unpacking")
    sts = [node("n1", ("0.0.2", "unpacked"), ("0.0.1", "permanent"))]
    sts[0].releases[0].libs = ["demo-0.0.2"]
    p = plan(sts, tar(), Relups(), OPTS)
    assert p.unpacked_already == ("n1",) and p.need_unpack == ()


# --- issue 8: adoption, stale unpacked releases, room on the node ---------------------------------

def test_mix_node_is_adopted_first_and_the_plan_says_so():
    mix = node("n1", ("0.0.1", "permanent"), releases_file=False)
    mix.releases[0].libs = []
    mix.rel_file = "/r/n1/releases/0.0.1/demo.rel"
    p = plan([mix] + ON_001[1:], tar(), Relups(), OPTS)
    assert p.adopt == ("n1",) and p.target("n1").adoption == "create"
    assert any(n.startswith("adopts n1 first") for n in p.notes) and p.to_json()["adopt"] == ["n1"]
    invented = node("n2", ("0.0.1", "permanent"))
    invented.releases[0].libs = []
    assert plan([invented], tar(), Relups(), OPTS).target("n2").adoption == "restart"


def test_mix_node_without_a_rel_cannot_be_adopted():
    mix = node("n1", ("0.0.1", "permanent"), releases_file=False)
    with pytest.raises(PreflightError, match="no RELEASES file .* no releases/0.0.1/\\*.rel to adopt"):
        plan([mix], tar(), Relups(), OPTS)


def test_stale_unpacked_release_is_named_and_replaced_on_request():
    sts = [node("n1", ("0.0.2", "unpacked"), ("0.0.1", "permanent")), node("n2", ("0.0.1", "permanent"))]
    sts[0].releases[0].libs = ["demo-0.0.2"]
    other = Relup("0.0.2", {"0.0.0": []}, {"0.0.0": []})      # built for another upgrade path
    facts = {"n1": NodeFacts(unpacked_relup=other)}
    with pytest.raises(PreflightError, match="n1: its relup differs.*--replace-unpacked"):
        plan(sts, tar(), Relups(), OPTS, facts=facts)
    p = plan(sts, tar(), Relups(), PlanOptions(vsn="0.0.2", replace_unpacked=True), facts=facts)
    assert p.replace_unpacked == ("n1",) and p.need_unpack == ("n1", "n2") and p.need_upload == ("n1", "n2")
    same = {"n1": NodeFacts(unpacked_relup=tar().relup)}
    assert plan(sts, tar(), Relups(), OPTS, facts=same).need_unpack == ("n2",)


def test_unwritable_or_full_releases_dir_is_refused_naming_the_node():
    with pytest.raises(PreflightError, match="n2: the releases dir /r/n2/releases is not writable"):
        plan(ON_001, tar(), Relups(), OPTS, facts={"n2": NodeFacts(writable=False)})
    t = tar()
    t.unpacked_size = 10 << 20
    with pytest.raises(PreflightError, match="n3: 1024 KiB free"):
        plan(ON_001, t, Relups(), OPTS, facts={"n3": NodeFacts(writable=True, free_bytes=1 << 20)})


def test_partial_tarball_installs_only_where_the_node_has_the_libs_it_leaves_out():
    # `erldeploy relup` leaves out the libs nodes on OLD have (kernel, stdlib at the same version)
    t = tar()
    t.apps = {"kernel": "8.5.3", "stdlib": "4.2", "demo": "0.0.2"}
    t.members = ["releases/demo-0.0.2.rel", "releases/0.0.2/demo-0.0.2.rel", "releases/0.0.2/relup",
                 "lib/demo-0.0.2/ebin/demo.app", "lib/demo-0.0.2/ebin/demo.appup"]
    assert t.omitted_libs == ("kernel-8.5.3", "stdlib-4.2")
    has = frozenset({"kernel-8.5.3", "stdlib-4.2", "demo-0.0.1"})
    p = plan(ON_001, t, Relups(), OPTS, facts={n.node: NodeFacts(lib_dirs=has) for n in ON_001})
    assert p.need_unpack == ("n1", "n2", "n3") and dict(p.expected_apps)["kernel"] == "8.5.3"
    facts = {"n1": NodeFacts(lib_dirs=has), "n2": NodeFacts(lib_dirs=frozenset({"kernel-8.5.3"}))}
    with pytest.raises(PreflightError, match=r"n2: demo-0.0.2.tar.gz leaves out lib/stdlib-4.2 and the node "
                                             r"has no such dir.*erldeploy relup --full"):
        plan(ON_001, t, Relups(), OPTS, facts=facts)
    whole = tar()
    whole.members = ["releases/demo-0.0.2.rel", "lib/demo-0.0.2/ebin/demo.app"]
    assert whole.omitted_libs == ()       # a whole tarball: nothing to check, nothing read


def test_doctor_warnings_are_carried_one_line_per_node_and_never_refuse():
    advice = {"n2": ["heart: not running: a VM that dies stays down (start it with -heart)"], "n1": [],
              "n3": ["ports: 900 of 1024 in use (88%): raise +Q", "crash dumps left: /r/n3/erl_crash.dump"]}
    p = plan(ON_001, tar(), Relups(), OPTS, advice=advice)
    assert p.warnings == ("n2: heart: not running: a VM that dies stays down (start it with -heart)",
                          "n3: ports: 900 of 1024 in use (88%): raise +Q", "n3: crash dumps left: /r/n3/erl_crash.dump")
    assert p.to_json()["warnings"] == list(p.warnings) and p.batches == (("n1",), ("n2",), ("n3",))
    assert plan(ON_001, tar(), Relups(), OPTS).warnings == ()


@pytest.mark.parametrize("n,batch,cap,sizes", [
    (16, 1, 0, [1, 1, 2, 4, 8]),          # canary, then waves that double
    (64, 1, 8, [1, 1, 2, 4] + [8] * 7),   # --max-parallel caps them
    (10, 3, 0, [1, 3, 6]),
])
def test_canary_waves_grow(n, batch, cap, sizes):
    nodes = [f"n{i}" for i in range(n)]
    got = batches(nodes, "canary", batch, cap)
    assert [len(b) for b in got] == sizes and [x for b in got for x in b] == nodes


def test_max_parallel_caps_all_and_rolling():
    nodes = list("abcde")
    assert batches(nodes, "all", 1, 2) == (("a", "b"), ("c", "d"), ("e",))
    assert batches(nodes, "rolling", 4, 3) == (("a", "b", "c"), ("d", "e"))
