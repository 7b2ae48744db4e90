"""The file a Delta stands for: the original tarball when it is full, else a new
gzip'd tar of its members (the same headers and bytes: each kept member's blocks copied
as they are, tarindex.py), written once per Delta."""

from __future__ import annotations

import gzip
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from . import tarindex
from .delta import Delta
from .tarbytes import tar_bytes


@dataclass(frozen=True)
class Payload:
    path: Path
    size: int
    sha256: str
    md5: str
    delta: Delta


def build(tar_path: Path, delta: Delta, out_dir: Path, index: int, *, sha256: str, md5: str) -> Payload:
    """The payload of ``delta`` (sha256/md5: the original's, used when it is full)."""
    return build_all(tar_path, [delta], out_dir, sha256=sha256, md5=md5, first=index)[0]


def build_all(tar_path: Path, deltas: Sequence[Delta], out_dir: Path, *, sha256: str, md5: str,
              first: int = 0) -> list[Payload]:
    """One payload per delta, in order (files delta-FIRST.tar.gz, ...); the tarball is read
    and gunzipped once for all of them, and not at all when every delta is full."""
    tar: memoryview | None = None
    entries: list[tarindex.Entry] = []
    out: list[Payload] = []
    for index, delta in enumerate(deltas, first):
        if delta.full:
            out.append(Payload(Path(tar_path), Path(tar_path).stat().st_size, sha256, md5, delta))
            continue
        if tar is None:
            tar = memoryview(tar_bytes(Path(tar_path).read_bytes()))
            entries = tarindex.read(tar)
        path = Path(out_dir) / f"delta-{index}.tar.gz"
        if any(e.start < 0 for e in entries):      # read by tarfile: its member bytes unknown
            _through_tarfile(tar_path, delta, path)
            data = path.read_bytes()
        else:
            kept = [tar[e.start:e.end] for e in entries if delta.keeps(e.name)]
            # mtime 0 in the gzip header: the same delta is the same bytes (and digest) every run
            data = gzip.compress(b"".join([*kept, bytes(2 * tarindex.BLOCK)]), mtime=0)
            path.write_bytes(data)
        out.append(Payload(path, len(data), hashlib.sha256(data).hexdigest(), hashlib.md5(data).hexdigest(), delta))
    return out


def _through_tarfile(tar_path: Path, delta: Delta, out: Path) -> None:
    """An archive tarindex does not read (inspect_tarball let tarfile read it)."""
    import tarfile

    with tarfile.open(tar_path, "r:gz") as src, open(out, "wb") as raw, \
            gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as gz, \
            tarfile.open(fileobj=gz, mode="w", format=tarfile.GNU_FORMAT) as dst:
        for m in src:
            if delta.keeps(m.name.removeprefix("./")):
                dst.addfile(m, src.extractfile(m) if m.isfile() else None)
