"""Upload a release tarball into a node's releases dir over plain RPC (no agent).

Chunks are appended to `NAME.part`, the node hashes the result itself (MD5 through the
BIF, so no `crypto` is needed), and only a matching file is renamed into place. A file
already there with the same digest makes the upload a no-op.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..errors import ReleaseError
from ..remote_eval import eval_erlang
from ..term.types import Atom
from .terms import show

if TYPE_CHECKING:
    from .nodeops import NodeOps
    from .tarball import TarballInfo

CHUNK = 1 << 20


def upload_name(tar: TarballInfo) -> str:
    """The name a tarball gets in the releases dir (install moves it where its layout needs)."""
    return tar.layout.upload_name if tar.layout is not None else tar.path.name

_MD5_OF_FILE = "case file:read_file(F) of {ok, B} -> erlang:md5(B); {error, R} -> {error, R} end."


@dataclass(frozen=True)
class UploadResult:
    """What one node's upload did (the agent's and the plain-RPC path alike)."""

    node: str
    path: str            # the tarball's final path on the node
    bytes: int
    skipped: bool        # the node already had this exact file
    algo: str            # "sha256" or "md5" (a node without crypto; the plain path)
    seconds: float

    def describe(self) -> str:
        return f"{self.path}: " + ("already there (same checksum)" if self.skipped else f"{self.bytes} bytes written")


async def upload_plain(c: NodeOps, node: str, tar: TarballInfo, releases_dir: str,
                       progress: Callable[[int, int], None] | None = None, *, name: str | None = None
                       ) -> UploadResult:
    """Into releases_dir/name (default: the tarball's upload name, NAME-VSN.tar.gz)."""
    t0 = time.monotonic()
    final = f"{releases_dir}/{name or upload_name(tar)}"
    part = final + ".part"
    want = bytes.fromhex(tar.md5)
    if await eval_erlang(c.rpc, node, _MD5_OF_FILE, {"F": final}) == want:
        return UploadResult(node, final, 0, True, "md5", time.monotonic() - t0)
    sent = 0
    with open(tar.path, "rb") as f:
        first = True
        while chunk := f.read(CHUNK):
            mode = [] if first else [Atom("append")]
            r = await c.rpc(node, "file", "write_file", [part, chunk, mode])
            if r != "ok":
                raise ReleaseError(f"{node}: writing {part} failed: {show(r)}", node=node)
            first = False
            sent += len(chunk)
            if progress:
                progress(sent, tar.size)
    got = await eval_erlang(c.rpc, node, _MD5_OF_FILE, {"F": part})
    if got != want:
        await c.rpc(node, "file", "delete", [part])
        raise ReleaseError(f"{node}: checksum mismatch after upload of {tar.path.name} "
                           f"(expected md5 {tar.md5}, node has {got.hex() if isinstance(got, bytes) else show(got)}); "
                           "the partial file was removed", node=node)
    r = await c.rpc(node, "file", "rename", [part, final])
    if r != "ok":
        raise ReleaseError(f"{node}: renaming {part} into place failed: {show(r)}", node=node)
    return UploadResult(node, final, sent, False, "md5", time.monotonic() - t0)
