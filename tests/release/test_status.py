"""`erldeploy status` against a real three-node demo cluster."""

from __future__ import annotations

from .conftest import releases_of


def test_status_json_reports_every_node(cli, demo):
    code, doc = cli.json("status", "--cluster")
    assert code == 0, doc
    assert doc["schema"] == "erldeploy.status/1"
    assert doc["ok"] and doc["one_release"]
    assert doc["release"] == {"name": "demo", "vsn": "0.0.1"}
    assert sorted(n["node"] for n in doc["nodes"]) == sorted(demo.nodes)
    for n in doc["nodes"]:
        assert n["reachable"]
        assert n["otp_release"] == demo.eval(n["node"], "erlang:system_info(otp_release)").strip('"')
        assert n["releases"] == [{"name": "demo", "vsn": "0.0.1", "state": "permanent"}]
        assert n["current"] == n["permanent"] == "0.0.1"
        apps = {a["name"]: a["vsn"] for a in n["applications"]}
        assert apps["demo"] == "0.0.1" and "sasl" in apps
        assert n["uptime_seconds"] > 0
        assert n["releases_file"] and n["release_handler"] and not n["mix_release"]


def test_status_table_for_people(cli, demo):
    p = cli("status", "--cluster")
    assert p.returncode == 0, p.stderr
    for n in demo.nodes:
        assert n in p.stdout
    assert "cluster on one release" in p.stdout


def test_status_flags_drift_and_not_permanent(cli, demo, demo_build):
    # one node hot-upgraded by hand, not made permanent: drift + "would revert on restart"
    node = demo.nodes[1]
    import shutil
    shutil.copy(demo_build.tars["0.0.2"], demo.root_of(node) / "releases")
    demo.eval(node, 'release_handler:unpack_release("demo-0.0.2")')
    demo.eval(node, 'release_handler:install_release("0.0.2")')
    assert releases_of(demo, node)["0.0.2"] == "current"
    code, doc = cli.json("status", "--cluster")
    assert code == 1
    assert not doc["one_release"]
    text = " ".join(doc["problems"])
    assert "drift" in text and node in text and "not permanent" in text


def test_status_exit_1_when_a_node_is_down(cli, demo):
    demo.kill_node(demo.nodes[2])
    p = cli("status", "-n", demo.nodes[1], "-n", demo.nodes[2])
    assert p.returncode == 1
    assert demo.nodes[2] in p.stdout + p.stderr


def test_status_lists_modules_modified_on_disk(cli, demo, demo_build):
    # a beam of another version written over the loaded one: the node runs code that is not on disk
    node = demo.nodes[0]
    loaded = demo.root_of(node) / "lib" / "demo-0.0.1" / "ebin" / "demo_server.beam"
    newer = demo_build.root / "lib" / "demo-0.0.2" / "ebin" / "demo_server.beam"
    loaded.write_bytes(newer.read_bytes())
    code, doc = cli.json("status", "--cluster")
    mods = {n["node"]: n["modified_modules"] for n in doc["nodes"]}
    assert mods[node] == ["demo_server"]
    assert all(m == [] for n, m in mods.items() if n != node)
    p = cli("status", "--cluster")
    assert "demo_server" in p.stdout
