"""Write OUT: NEW's release in NEW's own layout, plus the appups and the relup.

    lib/APP-VSN/ebin/APP.appup     every generated (or user-chosen) appup
    releases/VSN/relup             up from OLD and down to OLD, from systools

Everything else is NEW's, byte for byte and in its order (a tarball NEW is copied member by
member; a directory NEW is packed the way its builder's tar step would: lib of the .rel's
apps, releases/VSN, the top-level .rel of its layout, bin/ and the erts when present).
By default OUT leaves out what every node running OLD already has: the lib/APP-VSN dirs of
apps at the same version in both .rel files, and the erts when it did not change
(unpack_release only checks that the .rel's libs exist under the root: DESIGN.md). `full`
keeps them, for a tarball that also boots a fresh node.
A systools release is unpacked as unpack_release(STEM), which reads releases/STEM.rel with
STEM the tarball's own name: when OUT is not named NAME-VSN.tar.gz it carries the .rel
under its own name too. relx and mix tarballs are unpacked under their layout's names
("NAME", "VSN/NAME": DESIGN.md), so nothing is added to them.
The relup is added last, so the bulk can be written while systools still runs.
"""

from __future__ import annotations

import gzip
import io
import os
import tarfile
import time
from collections.abc import Callable
from pathlib import Path

from ..errors import ReleaseError
from ..release.tarindex import Entry
from .releases import Release

COMPRESSLEVEL = 1   # beams compress little more at 6, at 3x the time


class OutWriter:
    """Streams OUT to a temp file beside it; `finish` adds the relup and renames into place."""

    def __init__(self, out: Path, new: Release, appups: dict[str, str], have: tuple[str, ...] = ()):
        """have: member prefixes the nodes already have (left out of OUT)."""
        self.out = Path(out)
        self.new = new
        self.have = have
        self.tmp = self.out.with_name(f".{self.out.name}.{os.getpid()}.tmp")
        # open across write_bulk/finish (two threads' turns): closed in finish or abort
        try:
            self.out.parent.mkdir(parents=True, exist_ok=True)
            self._raw = open(self.tmp, "wb")  # noqa: SIM115
        except OSError as e:
            raise ReleaseError(f"cannot write {self.out}: {e.strerror or e}") from None
        self._gz = gzip.GzipFile(fileobj=self._raw, mode="wb", compresslevel=COMPRESSLEVEL, mtime=0)
        self.tar = tarfile.open(fileobj=self._gz, mode="w:", format=tarfile.USTAR_FORMAT)  # noqa: SIM115
        self.replaced = {f"lib/{app}-{new.app_versions[app]}/ebin/{app}.appup": text.encode("utf-8")
                         for app, text in appups.items()}
        self.relup_member = f"releases/{new.vsn}/relup"
        self.count = 0

    def write_bulk(self) -> None:
        written: set[str] = set()
        skip = set(self.replaced) | {self.relup_member}

        def wanted(name: str) -> bool:
            return not (name in skip or name in written or (self.have and name.startswith(self.have)))

        for info, data in _members_of(self.new, wanted):
            name = info.name.removeprefix("./")
            written.add(name)
            info.name = name
            self.tar.addfile(info, io.BytesIO(data) if data is not None else None)
            self.count += 1
        stem = self.out.name[:-len(".tar.gz")] if self.out.name.endswith(".tar.gz") else None
        if self.new.layout == "systools" and stem and f"releases/{stem}.rel" not in written:
            self._add(f"releases/{stem}.rel", self.new.rel_bytes)
        for name, data in sorted(self.replaced.items()):
            self._add(name, data)

    def finish(self, relup_text: str) -> Path:
        self._add(self.relup_member, relup_text.encode("utf-8"))
        self.tar.close()
        self._gz.close()
        self._raw.close()
        os.replace(self.tmp, self.out)
        return self.out

    def abort(self) -> None:
        from contextlib import suppress

        for f in (self.tar, self._gz, self._raw):
            with suppress(Exception):   # best effort on the way out of a failure
                f.close()
        self.tmp.unlink(missing_ok=True)

    def _add(self, name: str, data: bytes) -> None:
        info = tarfile.TarInfo(name)
        info.size, info.mode, info.mtime = len(data), 0o644, int(time.time())
        self.tar.addfile(info, io.BytesIO(data))
        self.count += 1


def already_there(old: Release, new: Release) -> tuple[str, ...]:
    """What nodes running OLD have of NEW: libs at the same version, an unchanged erts."""
    ov = old.app_versions
    have = tuple(f"lib/{a.name}-{a.vsn}/" for a in new.apps if ov.get(a.name) == a.vsn)
    return have + ((f"erts-{new.erts}/",) if old.erts == new.erts else ())


def _members_of(rel: Release, wanted: Callable[[str], bool]):
    """(TarInfo, bytes | None) for every member OUT takes from NEW; the files of names
    not `wanted` are not read (most of NEW, libs the nodes have)."""
    files = rel.files
    if files.is_tar:
        for e in files.entries:
            if not wanted(e.name):
                continue
            if e.kind == "file":
                yield _info(e), files.read_entry(e)
            elif e.kind in ("dir", "symlink", "hardlink"):     # not devices or fifos
                yield _info(e), None
        return
    root = files.origin
    for rel_path in _dir_selection(rel):
        if not wanted(rel_path):
            continue
        p = root / rel_path
        info = tarfile.TarInfo(rel_path)
        st = p.lstat()
        info.mode, info.mtime = st.st_mode & 0o7777, int(st.st_mtime)
        if p.is_symlink():
            info.type, info.linkname = tarfile.SYMTYPE, os.readlink(p)
            yield info, None
        else:
            data = p.read_bytes()
            info.size = len(data)
            yield info, data


_TYPES = {"file": tarfile.REGTYPE, "dir": tarfile.DIRTYPE, "symlink": tarfile.SYMTYPE,
          "hardlink": tarfile.LNKTYPE}


def _info(e: Entry) -> tarfile.TarInfo:
    """NEW's member as OUT writes it: name, kind, mode, mtime, link (owners are not kept)."""
    info = tarfile.TarInfo(e.name)
    info.type = _TYPES.get(e.kind, tarfile.REGTYPE)
    info.size, info.mode, info.mtime, info.linkname = e.size, e.mode, e.mtime, e.linkname
    return info


def _dir_selection(rel: Release) -> list[str]:
    libs = tuple(f"lib/{a.name}-{a.vsn}/" for a in rel.apps)
    keep = (*libs, f"releases/{rel.vsn}/", "bin/", f"erts-{rel.erts}/")
    inner = f"releases/{rel.vsn}/{rel.name}.tar.gz"     # Distillery's copy of the whole release
    # not releases/COOKIE (the node has its own) nor RELEASES (it would list only NEW)
    tops = {f"releases/{rel.name}.rel", f"releases/{rel.name}-{rel.vsn}.rel", "releases/start_erl.data"}
    return [n for n in rel.files.names if (n.startswith(keep) and n != inner) or n in tops]
