"""Fixtures for release-management tests: the demo releases (built once, cached) and a
fresh three-node demo cluster per test, on its own epmd, killed by pid afterwards.

State on the nodes is checked with `erl_call` (Erlang's own C hidden node) through
demo_cluster's `eval`, so these tests never judge erldeploy by erldeploy alone.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "scripts"))

import demo_cluster  # noqa: E402
import demo_releases  # noqa: E402


@pytest.fixture(scope="session")
def demo_build() -> demo_releases.DemoBuild:
    return demo_releases.build()


def fresh_cluster(demo_build, workdir: Path, n: int):
    """A demo cluster of n nodes under workdir, stopped (by pid) when the test ends."""
    c = demo_cluster.start_cluster(demo_build, workdir, n=n,
                                   name_prefix=f"r{os.getpid()}{secrets.token_hex(2)}n")
    try:
        yield c
    finally:
        c.stop()


@pytest.fixture
def demo(demo_build, tmp_path):
    yield from fresh_cluster(demo_build, tmp_path / "cluster", 3)


class Cli:
    """Runs the real `erldeploy` command (a separate process) against a demo cluster."""

    def __init__(self, cluster):
        self.cluster = cluster

    def env(self) -> dict[str, str]:
        e = {k: v for k, v in os.environ.items() if not k.startswith("ERLDEPLOY_")}
        e["ERLDEPLOY_COOKIE"] = self.cluster.cookie
        e["ERL_EPMD_PORT"] = str(self.cluster.epmd_port)
        e["HOME"] = str(self.cluster.workdir)
        e["COLUMNS"] = "200"
        return e

    def __call__(self, *args: str, seed: str | None = None, timeout: float = 180) -> subprocess.CompletedProcess:
        cmd = [sys.executable, "-m", "pyrlang_deploy.cli.main", *args, "-n", seed or self.cluster.nodes[0]]
        p = subprocess.run(cmd, capture_output=True, text=True, env=self.env(), timeout=timeout)
        assert "Traceback" not in p.stderr, p.stderr
        assert self.cluster.cookie not in p.stdout + p.stderr
        return p

    def json(self, *args: str, **kw) -> tuple[int, dict]:
        p = self(*args, "--json", **kw)
        return p.returncode, json.loads(p.stdout)

    def popen(self, *args: str) -> subprocess.Popen:
        cmd = [sys.executable, "-m", "pyrlang_deploy.cli.main", *args, "-n", self.cluster.nodes[0]]
        return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=self.env())


@pytest.fixture
def cli(demo) -> Cli:
    return Cli(demo)


def releases_of(cluster, node: str) -> dict[str, str]:
    """which_releases as {vsn: state}, read with erl_call."""
    text = cluster.eval(node, "[{V, S} || {_, V, _, S} <- release_handler:which_releases()]")
    import re
    return {v: s for v, s in re.findall(r'\{"([^"]+)",(\w+)\}', text)}


def server_of(cluster, node: str) -> tuple[str, int]:
    """(demo_server:version(), demo_server:count()) on the node."""
    text = cluster.eval(node, "{demo_server:version(), demo_server:count()}")
    vsn, count = text.strip("{}").split(",")
    return vsn.strip('"'), int(count)


def bump(cluster, node: str, times: int) -> None:
    cluster.eval(node, f"[demo_server:bump() || _ <- lists:seq(1, {times})], ok")


# --- users' real releases (tests/support/realrel.py) ----------------------------------------

@pytest.fixture(scope="session")
def relx_pair():
    from tests.support import realrel
    return realrel.build_relx()


@pytest.fixture(scope="session")
def mix_pair():
    from tests.support import realrel
    return realrel.build_mix()


@pytest.fixture(scope="session")
def distillery_pair():
    from tests.support import realrel
    return realrel.build_distillery()


class RelCli:
    """The real `erldeploy` command against release nodes started by their own scripts."""

    def __init__(self, nodes):
        self.nodes = nodes          # realrel.Nodes

    def __call__(self, *args: str, on: list | None = None, timeout: float = 240) -> subprocess.CompletedProcess:
        e = {k: v for k, v in os.environ.items() if not k.startswith("ERLDEPLOY_")}
        e.update(ERLDEPLOY_COOKIE=self.nodes.cookie, ERL_EPMD_PORT=str(self.nodes.epmd_port),
                 HOME=str(self.nodes.home), COLUMNS="200")
        targets = [a for n in (on or self.nodes.nodes) for a in ("-n", n.node)]
        p = subprocess.run([sys.executable, "-m", "pyrlang_deploy.cli.main", *args, *targets],
                           capture_output=True, text=True, env=e, timeout=timeout)
        assert "Traceback" not in p.stderr, p.stderr
        return p

    def json(self, *args: str, **kw) -> tuple[int, dict]:
        p = self(*args, "--json", **kw)
        return p.returncode, json.loads(p.stdout)


HOOK = "erldeploy_hooktest"     # tests/release/hooks/erldeploy_hooktest.erl: a user's release hooks


@pytest.fixture(scope="session")
def hook_beam(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("hookbeam")
    subprocess.run(["erlc", "-o", str(out), str(Path(__file__).resolve().parent / "hooks" / f"{HOOK}.erl")],
                   check=True, timeout=120)
    return out / f"{HOOK}.beam"
