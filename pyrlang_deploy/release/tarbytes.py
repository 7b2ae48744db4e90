"""A release tarball's bytes, uncompressed (tar_bytes), and files read ahead (Prefetch).

`erldeploy relup` waits on two things: the erl that runs systools booting, and our reading
of OLD and NEW. Most of the reading is zlib, which lets go of the GIL, so `Prefetch` starts
it in a thread right after erl is spawned, before the rest of the command is imported
(imports hold the GIL and would otherwise come first). Only os, threading and zlib here.
"""

from __future__ import annotations

import os
import threading
import zlib

TYPE_CHECKING = False  # typing is not imported at run time: see cli/fastpath.py
if TYPE_CHECKING:
    from pathlib import Path


def gunzip(raw: bytes) -> bytes:
    """A tarball's gzip stream: one member (what erl_tar and tar write) in one zlib call,
    its CRC checked by zlib (a tenth faster than gzip.decompress, which checks it again in
    a second pass); anything else - several members, a damaged stream - goes to gzip,
    which also words the error."""
    import gzip

    d = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        data = d.decompress(raw)
    except zlib.error:
        return gzip.decompress(raw)
    if d.eof and not d.unused_data.strip(b"\0"):
        return data
    return gzip.decompress(raw)


def tar_bytes(raw: bytes) -> bytes:
    """The tar archive in a file's bytes: gunzipped when it is gzip, else as is."""
    return gunzip(raw) if raw[:2] == b"\x1f\x8b" else raw


class Prefetch:
    """Reads and gunzips each named regular file in one background thread, in order.
    get(path) waits for that file: its tar bytes, or None when anything went wrong (the
    normal path then reads it again and words the error)."""

    def __init__(self, paths: list[Path | str]) -> None:
        self._paths = [_key(p) for p in paths]
        self._done: dict[str, bytes | None] = {}
        self._ready = {p: threading.Event() for p in self._paths}
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        for p in self._paths:
            try:
                with open(p, "rb") as f:
                    self._done[p] = tar_bytes(f.read()) if os.path.isfile(p) else None
            except Exception:  # noqa: BLE001 - any failure: the normal path reports it
                self._done[p] = None
            self._ready[p].set()

    def get(self, path: Path | str) -> bytes | None:
        key = _key(path)
        ev = self._ready.get(key)
        if ev is None:
            return None
        ev.wait()
        return self._done.pop(key, None)


def _key(path: Path | str) -> str:
    # one spelling for "./old.tar.gz" (argv) and Path("old.tar.gz") (what the command passes on)
    return os.path.normpath(os.fspath(path))
