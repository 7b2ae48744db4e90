"""Guarded installs through the agent on real demo target-system nodes.

Each test gets its own demo cluster (private epmd, unique names) so that a node
restarted or rolled back by one test never leaks into another. The controller is
a LocalNode in this process, except for the SIGKILL test, where it is a separate
Python process we kill.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from pyrlang_deploy.erldist.node import LocalNode
from pyrlang_deploy.errors import AgentError
from pyrlang_deploy.release.agent import MODULES, AgentClient, GuardEvent
from pyrlang_deploy.term.types import Atom

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "scripts"))

import demo_cluster  # noqa: E402
import demo_releases  # noqa: E402

LEASE_S = 3.0
MARGIN_S = 2.5           # rollback (a few ms here) + polling + a loaded 2-core machine


@pytest.fixture(scope="module")
def build():
    return demo_releases.build()


def start(build, tmp_path, n: int):
    return demo_cluster.start_cluster(build, tmp_path / "c", n=n,
                                      name_prefix=f"ag{os.getpid()}{secrets.token_hex(2)}n")


@pytest.fixture
def cluster3(build, tmp_path):
    c = start(build, tmp_path, 3)
    try:
        yield c
    finally:
        c.stop()


@pytest.fixture
def cluster1(build, tmp_path):
    c = start(build, tmp_path, 1)
    try:
        yield c
    finally:
        c.stop()


async def prepare(client: AgentClient, build, nodes: list[str], vsn: str) -> dict[str, int]:
    """Upload and unpack `vsn` everywhere, bump each server twice; returns the counts."""
    async def one(node: str) -> int:
        await client.upload(node, build.tars[vsn])
        r = await client.local.rpc(node, "release_handler", "unpack_release", [f"demo-{vsn}"])
        assert r == (Atom("ok"), vsn), r
        await client.local.rpc(node, "demo_server", "bump", [])
        return await client.local.rpc(node, "demo_server", "bump", [])

    counts = await asyncio.gather(*(one(n) for n in nodes))
    return dict(zip(nodes, counts))


async def server(local: LocalNode, node: str) -> tuple[str, int]:
    return (await local.rpc(node, "demo_server", "version", []), await local.rpc(node, "demo_server", "count", []))


async def releases(local: LocalNode, node: str) -> dict[str, str]:
    rels = await local.rpc(node, "release_handler", "which_releases", [])
    return {v: str(s) for _, v, _, s in rels}


async def agent_loaded(local: LocalNode, node: str) -> list[str]:
    return [m for m in MODULES if await local.rpc(node, "code", "is_loaded", [Atom(m)]) is not False]


async def wait_rolled_back(local: LocalNode, nodes: list[str], to: str, timeout: float) -> float:
    """Seconds until every node runs `to` as its current release again."""
    t0 = time.monotonic()
    pending = set(nodes)
    while pending:
        for n in list(pending):
            rels = await releases(local, n)
            if rels.get(to) == "permanent" and "current" not in rels.values():
                pending.discard(n)
        if pending and time.monotonic() - t0 > timeout:
            raise AssertionError(f"not rolled back within {timeout}s: {sorted(pending)}")
        await asyncio.sleep(0.05)
    return time.monotonic() - t0


# ---------------------------------------------------------------- commit / lease

async def test_commit_makes_the_release_permanent_and_leaves_no_agent(build, cluster3):
    async with LocalNode(cookie=cluster3.cookie, epmd_port=cluster3.epmd_port) as local:
        client = AgentClient(local)
        nodes = cluster3.nodes
        counts = await prepare(client, build, nodes, "0.0.2")
        events: list[GuardEvent] = []
        results = await asyncio.gather(*(
            client.guard_install(n, "0.0.2", LEASE_S * 10, verify="demo:health",
                                 expected_apps={"demo": "0.0.2"}, on_event=events.append) for n in nodes))
        for r in results:
            assert r.ok, r.describe()
            assert r.from_vsn == "0.0.1" and dict(r.releases)["0.0.2"] == "current"
            assert {"check", "install", "verify"} <= set(r.timings_ms)
            assert r.crashes == []
        st = await client.status(nodes[0])
        assert st.guard and st.guard["phase"] == "waiting_commit" and st.guard["vsn"] == "0.0.2"
        await asyncio.gather(*(client.renew(n, "0.0.2") for n in nodes))
        await asyncio.gather(*(client.commit(n, "0.0.2") for n in nodes))
        await asyncio.gather(*(client.unload(n) for n in nodes))
        for n in nodes:
            assert (await releases(local, n))["0.0.2"] == "permanent"
            assert await server(local, n) == ("0.0.2", counts[n])        # state kept across code_change
            assert await agent_loaded(local, n) == []
        assert {e.kind for e in events} >= {"stage", "committed"}


async def test_no_commit_within_the_lease_rolls_back_keeping_state(build, cluster1):
    node = cluster1.nodes[0]
    async with LocalNode(cookie=cluster1.cookie, epmd_port=cluster1.epmd_port) as local:
        client = AgentClient(local)
        counts = await prepare(client, build, [node], "0.0.2")
        r = await client.guard_install(node, "0.0.2", LEASE_S, expected_apps={"demo": "0.0.2"})
        assert r.ok, r.describe()
        assert await server(local, node) == ("0.0.2", counts[node])
        took = await wait_rolled_back(local, [node], "0.0.1", LEASE_S + MARGIN_S)
        assert took <= LEASE_S + MARGIN_S
        assert await server(local, node) == ("0.0.1", counts[node])
        kinds = [e.kind for e in client.events(node)]
        assert "lease_expired" in kinds and "rollback" in kinds
        # The guard removed the agent itself, and left its record behind.
        deadline = time.monotonic() + 5
        while await agent_loaded(local, node) and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        assert await agent_loaded(local, node) == []
        st = await client.status(node)
        assert not st.loaded
        assert st.last_outcome and st.last_outcome["result"] == "lease_expired"
        assert st.last_outcome["report"]["rollback"] == ["ok", "rolled_back_to", "0.0.1"]


async def test_verify_failure_rolls_back_at_once(build, cluster1):
    node = cluster1.nodes[0]
    async with LocalNode(cookie=cluster1.cookie, epmd_port=cluster1.epmd_port) as local:
        client = AgentClient(local)
        counts = await prepare(client, build, [node], "0.0.2")
        # A health check that spawns a crashing process: the crash report fails the install too.
        r = await client.guard_install(node, "0.0.2", LEASE_S * 10, verify=("proc_lib", "spawn",
                                                                          [Atom("erlang"), Atom("exit"),
                                                                           [Atom("health_boom")]]),
                                       expected_apps={"demo": "0.0.9"})
        assert not r.ok and r.stage == "verify"
        assert r.rolled_back_to == "0.0.1"
        text = r.reason_text
        assert "app_versions" in text and "verify_call" in text
        assert any(c.reason == "health_boom" and c.kind == "crash_report" for c in r.crashes), r.crashes
        assert await server(local, node) == ("0.0.1", counts[node])
        assert (await releases(local, node))["0.0.1"] == "permanent"
        await client.unload(node)


async def test_abort_rolls_back_now_and_answers_with_the_old_version(build, cluster1):
    node = cluster1.nodes[0]
    async with LocalNode(cookie=cluster1.cookie, epmd_port=cluster1.epmd_port) as local:
        client = AgentClient(local)
        counts = await prepare(client, build, [node], "0.0.2")
        r = await client.guard_install(node, "0.0.2", LEASE_S * 10)
        assert r.ok, r.describe()
        with pytest.raises(AgentError) as e:
            await client.commit(node, "0.0.3")              # not what the guard holds
        assert "wrong_vsn" in str(e.value)
        assert await client.abort(node, "0.0.2") == "0.0.1"
        assert await server(local, node) == ("0.0.1", counts[node])
        with pytest.raises(AgentError):
            await client.renew(node, "0.0.2")               # the guard is gone
        st = await client.status(node)
        assert st.guard is None and st.last_outcome["result"] == "aborted"
        await client.unload(node)


# ---------------------------------------------------------------- the controller goes away

CONTROLLER = textwrap.dedent("""
    import asyncio, json, sys
    from pyrlang_deploy.erldist.node import LocalNode
    from pyrlang_deploy.release.agent import AgentClient

    async def main(cookie, port, vsn, lease, nodes):
        local = LocalNode(cookie=cookie, epmd_port=int(port))
        client = AgentClient(local)
        rs = await asyncio.gather(*(client.guard_install(n, vsn, float(lease), expected_apps={"demo": vsn})
                                    for n in nodes))
        print(json.dumps({"ok": [r.ok for r in rs]}), flush=True)
        await asyncio.sleep(3600)     # "about to commit" when it is killed

    asyncio.run(main(*sys.argv[1:5], sys.argv[5:]))
""")


async def test_sigkill_of_the_controller_rolls_every_node_back(build, cluster3, tmp_path):
    nodes = cluster3.nodes
    async with LocalNode(cookie=cluster3.cookie, epmd_port=cluster3.epmd_port) as local:
        client = AgentClient(local)
        counts = await prepare(client, build, nodes, "0.0.2")
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        errlog = tmp_path / "controller.err"
        with open(errlog, "wb") as err:          # a file, not a pipe nobody drains
            proc = subprocess.Popen([sys.executable, "-c", CONTROLLER, cluster3.cookie, str(cluster3.epmd_port),
                                     "0.0.2", str(LEASE_S), *nodes],
                                    stdout=subprocess.PIPE, stderr=err, env=env, start_new_session=True)
        try:
            try:
                line = await asyncio.wait_for(asyncio.to_thread(proc.stdout.readline), 120)
            except TimeoutError:
                line = b""
            assert line, f"the controller said nothing: {errlog.read_text(errors='replace')[-2000:]}"
            assert json.loads(line) == {"ok": [True] * len(nodes)}, line
            for n in nodes:
                assert await server(local, n) == ("0.0.2", counts[n])
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(10)
            took = await wait_rolled_back(local, nodes, "0.0.1", LEASE_S + MARGIN_S)
        finally:
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait(10)
        print(f"rolled back {len(nodes)} nodes {took:.2f}s after SIGKILL (lease {LEASE_S}s)")
        for n in nodes:
            assert await server(local, n) == ("0.0.1", counts[n])


async def test_cut_connections_roll_every_node_back(build, cluster3):
    nodes = cluster3.nodes
    async with LocalNode(cookie=cluster3.cookie, epmd_port=cluster3.epmd_port) as observer:
        controller = LocalNode(cookie=cluster3.cookie, epmd_port=cluster3.epmd_port)
        client = AgentClient(controller)
        counts = await prepare(client, build, nodes, "0.0.2")
        rs = await asyncio.gather(*(client.guard_install(n, "0.0.2", LEASE_S) for n in nodes))
        assert all(r.ok for r in rs), [r.describe() for r in rs]
        for conn in list(controller.connections.values()):
            conn._transport.abort()              # RST: the network is gone, not a polite close
        took = await wait_rolled_back(observer, nodes, "0.0.1", LEASE_S + MARGIN_S)
        print(f"rolled back {len(nodes)} nodes {took:.2f}s after the cut (lease {LEASE_S}s)")
        for n in nodes:
            assert await server(observer, n) == ("0.0.1", counts[n])
        await controller.close()


# ---------------------------------------------------------------- the broken release

async def test_broken_code_change_is_reported_with_its_reason(build, cluster1):
    node = cluster1.nodes[0]
    async with LocalNode(cookie=cluster1.cookie, epmd_port=cluster1.epmd_port) as local:
        client = AgentClient(local)
        await prepare(client, build, [node], build.broken)
        events: list[GuardEvent] = []
        r = await client.guard_install(node, build.broken, LEASE_S, expected_apps={"demo": build.broken},
                                       on_event=events.append)
        assert not r.ok and r.stage == "install", r.describe()
        assert "broken_on_purpose" in r.root_cause and "demo_server" in r.root_cause
        assert "broken_on_purpose" in r.describe()
        assert r.node_restarting
        print(r.describe())
        assert any(e.kind == "install_failed" for e in events)
    # release_handler restarted the node into its permanent release: back and serving.
    cluster1.wait_started(node, timeout=30)
    async with LocalNode(cookie=cluster1.cookie, epmd_port=cluster1.epmd_port) as local:
        rels = await releases(local, node)
        assert rels["0.0.1"] == "permanent" and "current" not in rels.values()
        assert (await server(local, node))[0] == "0.0.1"
        assert await agent_loaded(local, node) == []       # init:restart unloaded it
