"""Transfer on real demo clusters: only what a node lacks (delta), relayed node to node,
once per shared releases dir. What arrived is read back with erl_call, not erldeploy."""

from __future__ import annotations

import asyncio
import tarfile

import demo_cluster
import pytest

from pyrlang_deploy.cluster import Cluster
from pyrlang_deploy.release import ship as ship_mod
from pyrlang_deploy.release.tarball import inspect_tarball
from pyrlang_deploy.release.transfer import upload_everywhere

from .conftest import bump, fresh_cluster, releases_of, server_of


def api(c, nodes=None, discover=True):
    return Cluster(nodes or [c.nodes[0]], cookie=c.cookie, epmd_port=c.epmd_port, discover=discover)


def md5_on(c, node, path) -> str:
    return c.eval(node, f'{{ok, B}} = file:read_file("{path}"), binary:encode_hex(erlang:md5(B))').strip('<>"')


def members_on(c, node, path) -> set[str]:
    out = c.eval(node, f'{{ok, T}} = erl_tar:table("{path}", [compressed]), T')
    return {m.split("/")[0] + "/" + m.split("/")[1] for m in out.strip("[]").replace('"', "").split(",")}


async def test_delta_install_and_rollback_keep_state(demo, demo_build, monkeypatch):
    monkeypatch.setattr(ship_mod, "DIRECT_BYTES", 0)      # a delta this small would go to 3 nodes from here
    tar = demo_build.tars["0.0.2"]
    for n in demo.nodes:
        bump(demo, n, 3)
    events = []
    async with api(demo) as c:
        r = await c.install("0.0.2", tar=tar, on_event=events.append)
        assert r.ok, r.message
        sent = [e for e in events if e.step == "upload" and e.state == "ok"]
        assert len(sent) == 3 and all("(delta)" in e.detail for e in sent), [e.detail for e in sent]
        # kilobytes, not the 6 MB tarball: kernel, stdlib and sasl were already there
        assert all(int(e.detail.split()[0]) < tar.stat().st_size // 50 for e in sent)
        assert any("from controller" not in e.detail for e in sent)      # relayed node to node
        r = await c.rollback()
        assert r.ok, r.message
    for n in demo.nodes:
        assert releases_of(demo, n)["0.0.1"] == "permanent"
        assert server_of(demo, n) == ("0.0.1", 3)                        # state kept both ways


async def test_rebuilt_app_with_the_same_version_is_sent(demo, demo_build):
    tar = demo_build.tars["0.0.2"]
    info = inspect_tarball(tar)
    # lib/demo-0.0.2 already on two nodes: as in the tarball on n1, rebuilt (one byte, same size) on n2
    with tarfile.open(tar, "r:gz") as t:
        files = {m.name: t.extractfile(m).read() for m in t if m.isfile() and m.name.startswith("lib/demo-")}
    for i, node in enumerate(demo.nodes[:2]):
        for name, data in files.items():
            if i == 1 and name.endswith("demo_server.beam"):
                data = data[:-1] + bytes([data[-1] ^ 0xFF])
            p = demo.root_of(node) / name
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(data)
    async with api(demo) as c:
        got = await upload_everywhere(c, info, delta=True)
    assert all(r.ok for r in got.values()), got
    path = lambda n: f"{demo.root_of(n)}/releases/{info.layout.upload_name}"  # noqa: E731
    same, rebuilt, fresh = demo.nodes
    assert "lib/demo-0.0.2" not in members_on(demo, same, path(same))
    assert "lib/demo-0.0.2" in members_on(demo, rebuilt, path(rebuilt))     # the digest differed
    assert "lib/demo-0.0.2" in members_on(demo, fresh, path(fresh))
    assert "lib/kernel-8.5.3" not in members_on(demo, rebuilt, path(rebuilt))
    assert md5_on(demo, rebuilt, path(rebuilt)) == md5_on(demo, fresh, path(fresh))   # one delta for both


@pytest.fixture
def eight(demo_build, tmp_path):
    yield from fresh_cluster(demo_build, tmp_path / "c8", 8)


async def test_relay_survives_a_relay_node_killed_mid_transfer(eight, demo_build, monkeypatch):
    info = inspect_tarball(demo_build.tars["0.0.2"])
    killed: list[str] = []
    real_copy = ship_mod._Sender.copy

    async def copy(self, p, src, dst):
        task = asyncio.ensure_future(real_copy(self, p, src, dst))
        if not killed and src != eight.nodes[0]:      # the first node relaying that is not the seed
            killed.append(src)
            await asyncio.sleep(0.02)
            eight.kill_node(src)
        return await task

    monkeypatch.setattr(ship_mod._Sender, "copy", copy)
    deliveries = []
    async with api(eight) as c:
        got = await upload_everywhere(c, info, delta=False, on_delivery=deliveries.append)
    assert killed
    survivors = [n for n in eight.nodes if n not in killed]
    assert all(got[n].ok for n in survivors), {n: got[n].error for n in survivors if not got[n].ok}
    by = {d.node: d for d in deliveries if d.ok}
    assert any(d.source not in ("controller", "present") for d in by.values())     # it was relayed
    assert any(d.source == "controller" and d.node != eight.nodes[0] for d in by.values())  # the fallback
    want = info.md5.upper()
    for n in survivors:
        assert md5_on(eight, n, f"{eight.root_of(n)}/releases/{info.layout.upload_name}") == want
    async with api(eight, survivors, discover=False) as c:
        r = await c.install("0.0.2")        # the staged tarball, everywhere the cluster still is
        assert r.ok, r.message
    for n in survivors:
        assert releases_of(eight, n)["0.0.2"] == "permanent"


async def test_nodes_sharing_a_root_get_one_copy(demo, demo_build):
    info = inspect_tarball(demo_build.tars["0.0.2"])
    first = demo.nodes[0]
    twin = first.replace("n1@", "n1twin@")
    proc = demo_cluster.start_node(demo.root_of(first), twin, [], "long", demo.env())
    try:
        deadline = asyncio.get_running_loop().time() + 20
        while twin.split("@")[0] not in demo_cluster.epmd_names(demo.epmd_port):
            assert asyncio.get_running_loop().time() < deadline, "twin node did not register"
            await asyncio.sleep(0.1)
        demo.eval(twin, "ok")
        deliveries = []
        async with api(demo, [first, twin, demo.nodes[1]], discover=False) as c:
            got = await upload_everywhere(c, info, delta=False, on_delivery=deliveries.append)
        assert all(r.ok for r in got.values()), got
        by = {d.node: d for d in deliveries}
        assert by[twin].source == f"shared with {first}" and by[twin].bytes == 0
        assert sum(d.bytes for d in deliveries) == 2 * info.size          # two copies for three nodes
        path = f"{demo.root_of(first)}/releases/{info.layout.upload_name}"
        assert md5_on(demo, twin, path) == info.md5.upper()
    finally:
        demo_cluster.kill_proc(proc)


async def test_a_small_delta_goes_to_a_few_seeds_from_the_controller(demo, demo_build):
    info = inspect_tarball(demo_build.tars["0.0.2"])
    deliveries = []
    async with api(demo) as c:
        got = await upload_everywhere(c, info, delta=True, on_delivery=deliveries.append)
    assert all(r.ok for r in got.values()), got
    assert {d.node: d.source for d in deliveries} == {n: "controller" for n in demo.nodes}
    assert all(0 < d.bytes < info.size // 50 for d in deliveries)       # kilobytes each
    md5s = {md5_on(demo, n, f"{demo.root_of(n)}/releases/{info.layout.upload_name}") for n in demo.nodes}
    assert len(md5s) == 1                                               # one delta, the same everywhere


def test_delta_payload_is_a_tarball_release_handler_reads(demo_build, tmp_path):
    """The payload keeps the original headers and bytes of what it carries."""
    from pyrlang_deploy.release import payload
    from pyrlang_deploy.release.delta import Delta
    info = inspect_tarball(demo_build.tars["0.0.2"])
    d = Delta(frozenset({"lib/demo-0.0.2"}), frozenset({"lib/kernel-8.5.3"}), ("x",))
    p = payload.build(info.path, d, tmp_path, 0, sha256=info.sha256, md5=info.md5)
    with tarfile.open(p.path, "r:gz") as t, tarfile.open(info.path, "r:gz") as orig:
        names = set(t.getnames())
        assert not any(n.startswith("lib/kernel") for n in names)
        for m in t:
            if m.isfile():
                assert t.extractfile(m).read() == orig.extractfile(m.name).read()
    assert {n for n in info.members if not n.startswith("lib/") or n.startswith("lib/demo")} <= names
    assert payload.build(info.path, d, tmp_path, 0, sha256="", md5="").md5 == p.md5   # same bytes each time


async def test_inventories_taken_during_preflight_leave_no_agent_when_nothing_runs(demo, demo_build):
    """The agent is loaded (inventories) while preflight reads; a run that stops before any
    change (here the --before hook fails) removes it again, in this very process too."""
    from pyrlang_deploy.release.hooks import parse_hook

    tar = demo_build.tars["0.0.2"]
    async with api(demo) as c:
        r = await c.install("0.0.2", tar=tar, before=parse_hook("before", "erlang:error(refused_by_test)"))
        assert not r.ok and "nothing was changed" in r.message, r.message
        await asyncio.sleep(0.5)      # a clean-up forgotten would let a late load through here
    for n in demo.nodes:
        assert demo.eval(n, "[M || {M, _} <- code:all_loaded(), "
                            "lists:prefix(\"erldeploy\", atom_to_list(M))]") == "[]"
        assert releases_of(demo, n) == {"0.0.1": "permanent"}


async def test_inventories_on_one_host_go_as_many_at_once_as_it_has_cores(demo):
    """The three demo nodes share this host: their cold digests are gated by its cores, read
    from a node (not from here); a node alone on its host is not gated."""
    import os

    async with api(demo) as c:
        gate = await ship_mod.per_host_gate(c, list(c.members))
        sems = {n: gate(n) for n in c.members}
        assert len({id(s) for s in sems.values()}) == 1                  # one gate for the host
        assert all(isinstance(s, asyncio.Semaphore) for s in sems.values())
        assert next(iter(sems.values()))._value == len(os.sched_getaffinity(0))
        alone = await ship_mod.per_host_gate(c, [c.members[0]])
        assert not isinstance(alone(c.members[0]), asyncio.Semaphore)
