"""delta.py, pure: which units a node lacks, one payload per distinct node state, shared roots."""

from pyrlang_deploy.release.delta import (
    Contents,
    Delta,
    Inventory,
    Unit,
    lacking,
    other_builds,
    plan_deltas,
    share_roots,
    unit_of,
)

C = Contents((Unit("erts-13.1", (("bin/beam", 9),), b"E" * 16, 9),
              Unit("lib/demo-0.0.2", (("ebin/demo.beam", 3),), b"D" * 16, 3),
              Unit("lib/kernel-8.5", (("ebin/k.beam", 5),), b"K" * 16, 5)), 100)



def test_units_of_members():
    assert unit_of("lib/demo-0.0.2/ebin/demo.beam") == "lib/demo-0.0.2"
    assert unit_of("lib/demo-0.0.2") == "lib/demo-0.0.2"
    assert unit_of("erts-13.1/bin/beam.smp") == "erts-13.1"
    assert unit_of("releases/0.0.2/demo.rel") is None and unit_of("bin/demo") is None


def test_only_missing_or_different_content_is_sent():
    have_all = {"erts-13.1": b"E" * 16, "lib/demo-0.0.2": b"D" * 16, "lib/kernel-8.5": b"K" * 16}
    n = Inventory("a", "h", "/r", "/r/releases", have_all)
    assert lacking(C, n) == frozenset()
    rebuilt = Inventory("b", "h", "/r", "/r/releases", {**have_all, "lib/demo-0.0.2": b"X" * 16})
    assert lacking(C, rebuilt) == {"lib/demo-0.0.2"}          # same version, other build: sent
    sizes_differ = Inventory("c", "h", "/r", "/r/releases", {**have_all, "lib/kernel-8.5": "differs"})
    assert lacking(C, sizes_differ) == {"lib/kernel-8.5"}
    assert lacking(C, Inventory("d", "h", "/r", "/r/releases", {})) == {u.name for u in C.units}


def test_dirs_from_another_build_are_named():
    """unpack_release keeps existing files: a dir present with other content cannot be fixed by sending it."""
    have_all = {"erts-13.1": b"E" * 16, "lib/demo-0.0.2": b"D" * 16, "lib/kernel-8.5": b"K" * 16}
    assert other_builds(C, Inventory("a", "h", "/r", "/r/releases", have_all)) == frozenset()
    mixed = {**have_all, "lib/demo-0.0.2": b"X" * 16, "lib/kernel-8.5": "differs", "erts-13.1": "missing"}
    assert other_builds(C, Inventory("b", "h", "/r", "/r/releases", mixed)) == {"lib/demo-0.0.2", "lib/kernel-8.5"}
    assert other_builds(C, Inventory("c", "h", "/r", "/r/releases", {})) == frozenset()   # missing: sent, fine


def test_one_delta_per_node_state():
    have = {"erts-13.1": b"E" * 16, "lib/kernel-8.5": b"K" * 16, "lib/demo-0.0.2": "missing"}
    invs = [Inventory(f"n{i}", "h", f"/r{i}", f"/r{i}/releases", have) for i in range(3)]
    invs.append(Inventory("fresh", "h", "/f", "/f/releases", {}))
    ds = plan_deltas(C, invs)
    assert ds[0] == Delta(frozenset({"lib/demo-0.0.2"}), frozenset({"erts-13.1", "lib/kernel-8.5"}),
                          ("n0", "n1", "n2"))
    assert ds[1].full and ds[1].nodes == ("fresh",)
    assert ds[0].keeps("releases/0.0.2/demo.rel") and ds[0].keeps("lib/demo-0.0.2/ebin/demo.beam")
    assert not ds[0].keeps("lib/kernel-8.5/ebin/k.beam")


def test_nodes_sharing_a_releases_dir_on_one_host():
    invs = [Inventory("a", "h1", "/r", "/r/releases", {}), Inventory("b", "h1", "/r", "/r/releases/", {}),
            Inventory("c", "h2", "/r", "/r/releases", {}), Inventory("d", "h1", "/s", "/s/releases", {})]
    assert share_roots(invs) == {"b": "a"}
