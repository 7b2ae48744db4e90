"""The run's one decision (agent/erldeploy_decision.erl) on real demo nodes (issue 10).

A partition between nodes is the only way left to split a cluster: here one node is cut
off from the others (distinct wrong cookies per peer, so its controller link and erl_call
still work) just before commit is decided. The two others commit; the cut-off guard's
lease runs out, it can reach neither the decision nor a peer's record, rolls back and
says so; `status` names the command that converges, and that command does.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys

from pyrlang_deploy.erldist.node import LocalNode
from pyrlang_deploy.release.agent import AgentClient, decision
from pyrlang_deploy.term.types import Atom
from tests.test_agent_guard import build, cluster3, prepare, releases, wait_rolled_back  # noqa: F401

LEASE_S = 2.0


def cut_off(cluster, node: str) -> None:
    """`node` and every other member stop reaching each other; everyone else still reaches all."""
    others = [n for n in cluster.nodes if n != node]
    for i, o in enumerate(others):
        cluster.eval(node, f"erlang:set_cookie('{o}', 'wrong_from_{i}'), erlang:disconnect_node('{o}')")
        cluster.eval(o, f"erlang:set_cookie('{node}', 'wrong_to_{i}'), erlang:disconnect_node('{node}')")
    assert cluster.eval(node, f"net_adm:ping('{others[0]}')") == "pang"


async def test_a_node_cut_off_from_the_decision_rolls_back_and_status_says_how_to_converge(build, cluster3):  # noqa: F811
    n1, n2, n3 = cluster3.nodes
    async with LocalNode(cookie=cluster3.cookie, epmd_port=cluster3.epmd_port) as local:
        client = AgentClient(local)
        await prepare(client, build, cluster3.nodes, "0.0.2")
        await client.ensure_loaded(n1)
        owner = local.mailbox()
        d = await decision.start(local.rpc, n1, owner.pid, cluster3.nodes, LEASE_S)
        results = await asyncio.gather(*(client.guard_install(n, "0.0.2", LEASE_S, decision=d)
                                         for n in cluster3.nodes))
        assert all(r.ok for r in results), [r.describe() for r in results]
        for n in cluster3.nodes:
            await client.ready(n, "0.0.2")
        cut_off(cluster3, n3)
        assert await decision.claim(local.rpc, d, "commit") == ("commit", "by this run")
        # no commit from us: n1 and n2 follow the pushed decision, n3 never hears it
        await wait_rolled_back(local, [n3], "0.0.1", LEASE_S + 15)
        for n in (n1, n2):
            assert (await releases(local, n)).get("0.0.2") == "permanent"
        out = await local.rpc(n3, "persistent_term", "get", [(Atom("erldeploy_agent"), Atom("last_outcome"))])
        assert out["result"] == "lease_expired"
        assert "split_risk" in out["report"], out   # the guard says it could not learn the decision
        owner.close()

    env = {"ERLDEPLOY_COOKIE": cluster3.cookie, "ERL_EPMD_PORT": str(cluster3.epmd_port), "PATH": "/usr/bin:/bin",
           "HOME": str(cluster3.workdir)}
    nodes = [a for n in cluster3.nodes for a in ("-n", n)]
    p = subprocess.run([sys.executable, "-m", "pyrlang_deploy.cli.main", "status", "--json", *nodes],
                       capture_output=True, text=True, env=env)
    assert p.returncode == 1
    hint = json.loads(p.stdout)["converge"]
    want = f"converge with: erldeploy install 0.0.2 -n {n1} -n {n2} -n {n3}"
    assert hint.endswith(want) and n3 in hint.split(";")[1], hint
    command = want.split(": ", 1)[1].split()[1:]
    p = subprocess.run([sys.executable, "-m", "pyrlang_deploy.cli.main", *command], capture_output=True,
                       text=True, env=env)
    assert p.returncode == 0, p.stdout + p.stderr
    for n in cluster3.nodes:      # read back with erl_call
        assert '{"0.0.2",permanent}' in cluster3.eval(n, "[{V, S} || {_, V, _, S} <- release_handler:which_releases()]")
