"""The facts delta.py decides on: a tarball's units read locally, and what each node has.

    contents_of(path)            -> delta.Contents (one read of the tarball, digests cached)
    gather(rpc, nodes, contents) -> {node: delta.Inventory}: one RPC per node
                                    (erldeploy_relay:inventory/1, the agent loaded)

A unit's digest covers its regular files sorted by path (RelPath, 0, H(Content), 0): SHA-1
where the node has crypto loaded, else CRC-32 per file under an MD5; the same on both sides (the node compares file names and sizes first, so a dir that
differs costs it no hashing).
"""

from __future__ import annotations

import hashlib
import tarfile
import zlib
from collections.abc import Awaitable, Callable, Iterable
from functools import lru_cache
from pathlib import Path
from typing import Any

from ..errors import AgentError, RpcError
from .delta import Contents, Inventory, Unit, unit_of
from .terms import show, text

Rpc = Callable[..., Awaitable[Any]]


def contents_of(path: Path) -> Contents:
    st = Path(path).stat()
    return _contents(str(Path(path).resolve()), st.st_size, st.st_mtime_ns)


@lru_cache(maxsize=8)
def _contents(path: str, size: int, mtime_ns: int) -> Contents:
    del mtime_ns    # part of the cache key only
    files: dict[str, list[tuple[str, int, bytes, bytes]]] = {}
    with tarfile.open(path, "r:gz") as tar:
        for m in tar:
            u = unit_of(m.name)
            if u is None or not m.isfile():
                continue
            f = tar.extractfile(m)
            data = f.read() if f else b""
            files.setdefault(u, []).append((m.name.strip("/")[len(u) + 1:], m.size,
                                            zlib.crc32(data).to_bytes(4, "big"), hashlib.sha1(data).digest()))
    units = []
    for name, fs in files.items():
        fs.sort(key=lambda x: x[0])
        h, h1 = hashlib.md5(), hashlib.sha1()
        for rel, _, d, d1 in fs:
            h.update(rel.encode() + b"\0" + d + b"\0")
            h1.update(rel.encode() + b"\0" + d1 + b"\0")
        units.append(Unit(name, tuple((rel, size) for rel, size, _, _ in fs), h.digest(),
                          sum(s for _, s, _, _ in fs), h1.digest()))
    return Contents(tuple(sorted(units, key=lambda u: u.name)), size)


async def inventory(rpc: Rpc, node: str, contents: Contents) -> Inventory:
    arg = [(u.name.encode(), [(rel.encode(), size) for rel, size in u.files]) for u in contents.units]
    try:
        r = await rpc(node, "erldeploy_relay", "inventory", [arg], timeout=120.0)
    except RpcError as e:    # its text would repeat the whole file list
        raise AgentError(f"{node}: inventory of the release's lib dirs failed: {_brief(e.reason)}",
                         node=node) from None
    if not isinstance(r, dict):
        raise AgentError(f"{node}: inventory failed: {show(r)}", node=node)
    units = {text(d): (v if isinstance(v, bytes) else str(v)) for d, v in r["dirs"]}
    return Inventory(node, text(r["host"]), text(r["root"]), text(r["releases_dir"]), units, str(r["algo"]))


async def gather(each: Callable[..., Awaitable[Any]], rpc: Rpc, nodes: Iterable[str], contents: Contents
                 ) -> dict[str, Any]:
    """{node: NodeResult[Inventory]} through ops.each (one failure does not hide the rest)."""
    return await each(lambda n: inventory(rpc, n, contents), list(nodes))


def _brief(reason: Any) -> str:
    t = show(reason)
    return t if len(t) <= 200 else t[:197] + "..."
