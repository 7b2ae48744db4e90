"""Shared fixtures. Engineers add theirs here; keep each one small."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

# The repo root, so `tests.support` imports however pytest was started.
_REPO = str(Path(__file__).resolve().parents[1])
if _REPO not in sys.path:
    sys.path.insert(0, _REPO)


@pytest.fixture(scope="session")
def oracle():
    """One plain `erl` (no distribution) that judges the term codec; see tests/support/oracle.py."""
    from tests.support.oracle import Oracle

    node = Oracle()
    try:
        yield node
    finally:
        node.close()


# --- hidden node (pyrlang_deploy.erldist): a private epmd and real erl nodes ----------------
# Every node gets a unique name; every process started here is killed by pid at teardown.


@pytest.fixture
def epmd():
    """A private ``epmd -port P`` (never 4369) for one test."""
    from tests.support.nodes import Epmd

    daemon = Epmd().start()
    try:
        yield daemon
    finally:
        daemon.stop()


@pytest.fixture
def erl_node(epmd, tmp_path):
    """Factory: ``erl_node(long=True, cookie=None, net_ticktime=None, args=())`` -> started ErlNode
    registered with this test's epmd (its output goes to tmp_path/<name>.log)."""
    from tests.support.nodes import ErlNode

    started: list = []

    def make(**kw):
        node = ErlNode(epmd, **kw)
        started.append(node)
        return node.start(log_dir=tmp_path)

    try:
        yield make
    finally:
        for node in started:
            node.kill()


@pytest.fixture
async def pair(erl_node, epmd):
    """(LocalNode, ErlNode): our hidden node already connected to a fresh target node."""
    from pyrlang_deploy.erldist.node import LocalNode

    target = erl_node()
    async with LocalNode(cookie=target.cookie, epmd_port=epmd.port) as node:
        await node.connect(target.node)
        yield node, target
