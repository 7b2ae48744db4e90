"""Uploading a release tarball through the agent, on a real demo target-system node.

The node has no crypto (a minimal release: kernel, stdlib, sasl), so these runs
also prove the MD5 fallback. The Python controller is a LocalNode in this process.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import sys
import time
from collections.abc import Generator
from pathlib import Path

import pytest

from pyrlang_deploy.erldist.node import LocalNode
from pyrlang_deploy.errors import AgentError
from pyrlang_deploy.release.agent import AgentBeams, AgentClient, shipped_beams
from pyrlang_deploy.term.types import Atom

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "scripts"))

import demo_cluster  # noqa: E402
import demo_releases  # noqa: E402

TAR = "demo-0.0.2.tar.gz"


@pytest.fixture(scope="module")
def one_node(tmp_path_factory):
    build = demo_releases.build()
    c = demo_cluster.start_cluster(build, tmp_path_factory.mktemp("agent_up"), n=1,
                                   name_prefix=f"au{os.getpid()}{secrets.token_hex(2)}n")
    c.build = build
    try:
        yield c
    finally:
        c.stop()


@pytest.fixture
async def local(one_node):
    node = LocalNode(cookie=one_node.cookie, epmd_port=one_node.epmd_port)
    try:
        yield node
    finally:
        await node.close()


def releases_dir(cluster) -> Path:
    return cluster.root_of(cluster.nodes[0]) / "releases"


async def test_upload_arrives_intact_and_a_retry_is_a_no_op(one_node, local):
    node = one_node.nodes[0]
    tar = one_node.build.tars["0.0.2"]
    dest = releases_dir(one_node) / TAR
    if dest.exists():
        dest.unlink()
    client = AgentClient(local, chunk_size=64 * 1024)      # several chunks even for a small tarball
    seen: list[tuple[int, int]] = []
    res = await client.upload(node, tar, progress=lambda done, total: seen.append((done, total)))
    assert not res.skipped and res.algo == "md5" and res.bytes == tar.stat().st_size
    assert Path(res.path) == dest
    assert dest.read_bytes() == tar.read_bytes()
    assert seen[-1] == (res.bytes, res.bytes) and len(seen) == -(-res.bytes // (64 * 1024))
    assert not list(releases_dir(one_node).glob("*.part"))

    again = await client.upload(node, tar)
    assert again.skipped and again.path == res.path

    assert await client.loaded_on(node)
    assert await client.unload(node)
    assert not await client.loaded_on(node)
    for m in ("erldeploy_agent", "erldeploy_upload", "erldeploy_guard"):
        assert await local.rpc(node, "code", "is_loaded", [Atom(m)]) is False


class FlipInTransit(AgentClient):
    """Corrupts one byte of the second chunk on its way to the node."""

    def _chunks(self, p: Path) -> Generator[bytes, None, None]:
        for i, data in enumerate(super()._chunks(p)):
            if i == 1:
                data = bytes([data[0] ^ 0xFF]) + data[1:]
            yield data


async def test_a_corrupted_chunk_is_refused_before_the_rename(one_node, local):
    node = one_node.nodes[0]
    tar = one_node.build.tars["0.0.3"]
    dest = releases_dir(one_node) / tar.name
    if dest.exists():
        dest.unlink()
    client = FlipInTransit(local, chunk_size=16 * 1024)
    with pytest.raises(AgentError) as e:
        await client.upload(node, tar)
    assert "corrupted" in str(e.value) and node in str(e.value)
    assert not dest.exists()
    assert not list(releases_dir(one_node).glob("*.part"))
    # The release is not there to unpack.
    r = await local.rpc(node, "release_handler", "unpack_release", [tar.name[:-len(".tar.gz")]])
    assert r[0] == "error"
    await client.unload(node)


async def test_owner_death_removes_the_part_file(one_node, local):
    node = one_node.nodes[0]
    client = AgentClient(local)
    await client.ensure_loaded(node)
    part = releases_dir(one_node) / "ghost-1.tar.gz.part"
    mb = local.mailbox()
    r = await local.rpc(node, "erldeploy_agent", "upload_open",
                        ["ghost-1.tar.gz", 10_000, Atom("md5"), b"\0" * 16, mb.pid])
    assert r[0] == "ok"
    upid = r[1]
    await mb.send(upid, (Atom("erldeploy_chunk"), 0, b"x" * 1000))
    ack = await mb.receive(timeout=10)
    assert ack == (Atom("erldeploy_chunk_ack"), upid, 0)
    assert part.exists()
    mb.close()                              # the controller's process is gone
    deadline = time.monotonic() + 10
    while part.exists() and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    assert not part.exists()
    assert await local.rpc(node, "erlang", "is_process_alive", [upid]) is False
    await client.unload(node)


async def test_ensure_loaded_twice_is_harmless_and_clear_errors(one_node, local):
    node = one_node.nodes[0]
    client = AgentClient(local)
    assert await client.ensure_loaded(node) is True
    assert await client.ensure_loaded(node) is False        # same md5s: nothing to do
    st = await client.status(node)
    assert st.loaded and st.current and st.guard is None
    assert await client.unload(node) is True
    assert await client.unload(node) is False
    with pytest.raises(AgentError) as e:
        await client.renew(node, "0.0.2")
    assert node in str(e.value) and "not loaded" in str(e.value)


async def test_sha256_where_crypto_is_present(tmp_path):
    """A plain node has crypto: the upload uses sha256, and a big file streams in a window."""
    from tests.support.nodes import Epmd, ErlNode

    reldir = tmp_path / "releases"
    reldir.mkdir()
    blob = tmp_path / "big-1.tar.gz"
    blob.write_bytes(os.urandom(5 * 1024 * 1024 + 123))
    with Epmd() as epmd:
        with ErlNode(epmd) as erl:
            async with LocalNode(cookie=erl.cookie, epmd_port=epmd.port) as local:
                # Where release_handler would look, set before the agent asks.
                await local.rpc(erl.node, "application", "load", [Atom("sasl")])
                await local.rpc(erl.node, "application", "set_env", [Atom("sasl"), Atom("releases_dir"), str(reldir)])
                client = AgentClient(local)
                res = await client.upload(erl.node, blob)
                assert res.algo == "sha256" and not res.skipped, res
                assert Path(res.path) == reldir / blob.name, res
                assert (reldir / blob.name).read_bytes() == blob.read_bytes()
                assert (await client.upload(erl.node, blob)).skipped
                await client.unload(erl.node)


async def test_a_node_that_cannot_load_the_agent_gets_a_clear_error(one_node, local):
    node = one_node.nodes[0]
    shipped = shipped_beams()
    broken = AgentBeams({**shipped.beams, "erldeploy_fmt": b"FOR1 not a beam"},
                        {**shipped.md5, "erldeploy_fmt": "0" * 32}, shipped.source_sha256)
    client = AgentClient(local, beams=broken)
    with pytest.raises(AgentError) as e:
        await client.ensure_loaded(node)
    msg = str(e.value)
    assert node in msg and "erldeploy_fmt" in msg and "badfile" in msg and "\n" not in msg
    await client.unload(node)
