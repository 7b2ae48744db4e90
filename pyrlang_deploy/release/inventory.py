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
import threading
import zlib
from collections.abc import Awaitable, Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ..errors import AgentError, RpcError
from . import tarindex
from .delta import Contents, Inventory, Unit, unit_of
from .tarbytes import tar_bytes
from .terms import show, text

Rpc = Callable[..., Awaitable[Any]]


def contents_of(path: Path) -> Contents:
    """The tarball's units (inspect_tarball computed them already when it read this very
    file: then from the cache)."""
    key = _key(path)
    with _reading(key):
        if key not in _CACHE:
            data = tar_bytes(Path(path).read_bytes())
            remember(key, contents_from(tarindex.read(data), data, key[1]))
        return _CACHE[key]


@contextmanager
def reading(path: Path) -> Iterator[Callable[[Contents], None] | None]:
    """For a reader of the whole tarball (inspect_tarball): while it reads, contents_of of
    the same file waits for it instead of reading it too (ship.Prefetch runs beside it).
    Yields a function to hand it the contents, or None when they are known already."""
    key = _key(path)
    with _reading(key):
        yield (lambda c: remember(key, c)) if key not in _CACHE else None


def remember(key: tuple[str, int, int], contents: Contents) -> None:
    while len(_CACHE) >= 8:
        _CACHE.pop(next(iter(_CACHE)))
    _CACHE[key] = contents


# (resolved path, size, mtime_ns) -> Contents: a file changed on disk is read again
_CACHE: dict[tuple[str, int, int], Contents] = {}
_LOCKS: dict[tuple[str, int, int], threading.Lock] = {}
_LOCKS_LOCK = threading.Lock()


@contextmanager
def _reading(key: tuple[str, int, int]) -> Iterator[None]:
    with _LOCKS_LOCK:
        lock = _LOCKS.setdefault(key, threading.Lock())
    with lock:
        yield


def _key(path: Path) -> tuple[str, int, int]:
    st = Path(path).stat()
    return str(Path(path).resolve()), st.st_size, st.st_mtime_ns


def contents_from(entries: Iterable[tarindex.Entry], data: bytes | memoryview, size: int) -> Contents:
    """Pure: the units of a tar (its entries and uncompressed bytes); size: the file's."""
    view = memoryview(data)
    files: dict[str, list[tuple[str, int, bytes, bytes]]] = {}
    for e in entries:
        u = unit_of(e.name)
        if u is None or e.kind != tarindex.FILE:
            continue
        body = view[e.offset:e.offset + e.size]
        files.setdefault(u, []).append((e.name.strip("/")[len(u) + 1:], e.size,
                                        zlib.crc32(body).to_bytes(4, "big"), hashlib.sha1(body).digest()))
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
