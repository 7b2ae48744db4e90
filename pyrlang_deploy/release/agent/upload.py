"""Streaming a tarball to the agent: chunk messages with a window of unacknowledged
ones, the node checking size and digest before its atomic rename."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Awaitable, Callable, Generator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ...errors import AgentError, ReceiveTimeout
from ...term.types import Atom, Pid
from ..upload import UploadResult
from . import replies

if TYPE_CHECKING:
    from ...erldist.node import LocalNode

CHUNK_SIZE = 1 << 20
WINDOW = 8
ACK_TIMEOUT = 120.0          # one chunk written and hashed; generous for slow disks

ProgressCb = Callable[[int, int], Any]


class Digests:
    """File digests, kept while the file is unchanged (one hash for many nodes)."""

    def __init__(self) -> None:
        self._known: dict[tuple[str, int, int, str], bytes] = {}

    def of(self, p: Path, algo: str) -> bytes:
        st = p.stat()
        key = (str(p.resolve()), st.st_size, st.st_mtime_ns, algo)
        if key not in self._known:
            h = hashlib.new(algo)
            with p.open("rb") as f:
                for block in iter(lambda: f.read(1 << 20), b""):
                    h.update(block)
            self._known[key] = h.digest()
        return self._known[key]


async def upload(local: LocalNode, rpc: Callable[..., Awaitable[Any]], node: str, p: Path, name: str,
                 digest_of: Callable[[str], bytes], chunks: Callable[[Path], Generator[bytes, None, None]], *,
                 window: int = WINDOW, progress: ProgressCb | None = None) -> UploadResult:
    """Stream ``p`` into the node's releases dir as ``name``; digest_of(algo) gives its digest,
    chunks(p) the pieces as they go on the wire."""
    size = p.stat().st_size
    algo = replies.digest_algo(await rpc(node, "erldeploy_agent", "info", []))
    digest = digest_of(algo)
    t0 = time.monotonic()
    async with local.mailbox() as mb:
        opened = replies.upload_opened(await rpc(node, "erldeploy_agent", "upload_open",
                                                 [name, size, Atom(algo), digest, mb.pid]))
        if opened.kind == "already_present":
            if progress:
                progress(size, size)
            return UploadResult(node, opened.path, size, True, algo, time.monotonic() - t0)
        if opened.kind != "ok":
            raise AgentError(f"{node}: upload of {name} refused: {opened.reason}", node=node)
        await _stream(node, mb, opened.pid, p, size, chunks(p), window, progress)
        done = replies.upload_finished(await rpc(node, "erldeploy_agent", "upload_finish", [opened.pid],
                                                 timeout=ACK_TIMEOUT))
    if done.ok:
        return UploadResult(node, done.path, size, False, algo, time.monotonic() - t0)
    if done.mismatch:
        raise AgentError(f"{node}: {name} arrived corrupted ({algo} {done.mismatch[1]}, expected "
                         f"{done.mismatch[0]}); nothing was installed", node=node)
    raise AgentError(f"{node}: upload of {name} failed: {done.reason}", node=node)


async def _stream(node: str, mb: Any, upid: Pid, p: Path, size: int, chunks: Generator[bytes, None, None],
                  window: int, progress: ProgressCb | None) -> None:
    is_reply = replies.chunk_reply_of(upid)
    sent = done_bytes = 0
    in_flight: dict[int, int] = {}
    try:
        eof = size == 0
        while not eof or in_flight:
            while not eof and len(in_flight) < window:
                data = next(chunks, None)
                if data is None:
                    eof = True
                    break
                await mb.send(upid, (replies.CHUNK, sent, data))
                in_flight[sent] = len(data)
                sent += 1
            if not in_flight:
                break
            try:
                msg = await mb.receive(is_reply, timeout=ACK_TIMEOUT)
            except ReceiveTimeout:
                raise AgentError(f"{node}: upload of {p.name} stalled: no ack for {ACK_TIMEOUT:g}s",
                                 node=node) from None
            seq, err = replies.chunk_reply(msg)
            if err is not None:
                raise AgentError(f"{node}: upload of {p.name} failed at chunk {seq}: {err}", node=node)
            done_bytes += in_flight.pop(seq, 0)
            if progress:
                progress(done_bytes, size)
    finally:
        chunks.close()


def file_chunks(p: Path, chunk_size: int = CHUNK_SIZE) -> Generator[bytes, None, None]:
    """The file in chunk_size pieces, as they go on the wire."""
    with p.open("rb") as f:
        while data := f.read(chunk_size):
            yield data
