"""Read one release, tarball or release root directory, in any of the layouts builders make.

    rel = open_release(Path("_build/prod/rel/myapp"))      # or "...-0.2.0.tar.gz"
    rel.name, rel.vsn, rel.erts, rel.apps, rel.layout
    rel.ebin("myapp", "0.2.0")  -> {"myapp.app": member, "myapp_srv.beam": member, ...}
    rel.read(member) -> bytes

Layouts (where the .rel file is; the rest is lib/APP-VSN/ and releases/VSN/ in all of them):
  systools    releases/NAME-VSN.rel beside releases/VSN/NAME-VSN.rel (systools:make_tar)
  relx        releases/NAME.rel and releases/VSN/NAME.rel (rebar3 release / tar)
  mix         releases/VSN/NAME.rel only, app entries {App, Vsn, Type} (mix release)
  distillery  releases/VSN/NAME.sh (its per-version script), or a root whose only release is
              releases/VSN/NAME.tar.gz: the whole release inside, read as the release itself

This is our own reader and not release/tarball.py's: that one checks an upgrade tarball
before upload; this one needs every ebin file of both releases and the layout to rebuild.
"""

from __future__ import annotations

import gzip
import io
import re
import tarfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ReleaseError


class ReleaseReadError(ReleaseError):
    """OLD or NEW is not a release we can read (message names the file and why)."""


@dataclass(frozen=True)
class RelApp:
    name: str
    vsn: str


class Files:
    """The files of a release root: a tarball held in memory, or a directory on disk."""

    def __init__(self, origin: Path, tar: tarfile.TarFile | None, names: list[str], data: bytes = b""):
        self.origin = origin
        self.tar = tar
        self._data = memoryview(data)   # the uncompressed tarball, when held in memory
        self.names = names
        self._set = set(names)
        # tarfile's own lookup by name scans every member
        self._members = {_norm(m.name): m for m in tar.getmembers()} if tar is not None else {}

    def __contains__(self, name: str) -> bool:
        return name in self._set

    def read(self, name: str) -> bytes:
        if self.tar is not None:
            return self.read_member(self._members.get(name) or name)
        return (self.origin / name).read_bytes()

    def read_member(self, m: tarfile.TarInfo | str) -> bytes:
        """One member of the tarball (a TarInfo, or a name tarfile looks up)."""
        if isinstance(m, tarfile.TarInfo) and m.isreg() and not m.issparse() \
                and m.offset_data + m.size <= len(self._data):
            # a slice of the tarball: extractfile's file object costs more than the copy
            # (a truncated member goes to extractfile, which says so)
            return self._data[m.offset_data:m.offset_data + m.size].tobytes()
        f = self.tar.extractfile(m)
        if f is None:
            raise ReleaseReadError(f"{self.origin.name}: {_norm(getattr(m, 'name', m))} is not a regular file")
        return f.read()

    @classmethod
    def from_tar_bytes(cls, origin: Path, raw: bytes) -> Files:
        try:
            data = gunzip(raw) if raw[:2] == b"\x1f\x8b" else raw
            tar = tarfile.open(fileobj=io.BytesIO(data), mode="r:")  # noqa: SIM115 - kept: members read later
            members = tar.getmembers()
        except (tarfile.TarError, OSError, EOFError, zlib.error) as e:
            raise ReleaseReadError(f"{origin.name}: not a readable tarball ({e})") from None
        return cls(origin, tar, [_norm(m.name) for m in members if m.isfile() or m.issym()], data)

    @classmethod
    def from_dir(cls, root: Path) -> Files:
        names = [str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()]
        return cls(root, None, names)


def gunzip(raw: bytes) -> bytes:
    """A tarball's gzip stream: one member (what erl_tar and tar write) in one zlib call,
    its CRC checked by zlib (a tenth faster than gzip.decompress, which checks it again in
    a second pass); anything else - several members, a damaged stream - goes to gzip,
    which also words the error."""
    d = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        data = d.decompress(raw)
    except zlib.error:
        return gzip.decompress(raw)
    if d.eof and not d.unused_data.strip(b"\0"):
        return data
    return gzip.decompress(raw)


def _norm(name: str) -> str:
    return name.removeprefix("./")


@dataclass
class Release:
    name: str
    vsn: str
    erts: str
    apps: list[RelApp]
    layout: str                     # systools | relx | mix | distillery
    rel_member: str                 # releases/VSN/NAME(-VSN).rel
    rel_bytes: bytes
    files: Files
    origin: Path                    # what the user named
    inner: str | None = None        # distillery: the member holding the real release
    _ebins: dict[str, dict[str, str]] = field(default_factory=dict, repr=False)

    @property
    def app_versions(self) -> dict[str, str]:
        return {a.name: a.vsn for a in self.apps}

    def read(self, member: str) -> bytes:
        return self.files.read(member)

    def ebin(self, app: str, vsn: str) -> dict[str, str]:
        """file name -> member, for lib/APP-VSN/ebin (empty when the release lacks that lib)."""
        if not self._ebins:
            for n in self.files.names:
                parts = n.split("/")
                if len(parts) == 4 and parts[0] == "lib" and parts[2] == "ebin":
                    self._ebins.setdefault(parts[1], {})[parts[3]] = n
        return self._ebins.get(f"{app}-{vsn}", {})

    def has_erts(self) -> bool:
        return any(n.startswith(f"erts-{self.erts}/bin/") for n in self.files.names)


def open_release(path: Path) -> Release:
    path = Path(path)
    if path.is_dir():
        files = Files.from_dir(path)
    elif path.is_file():
        files = Files.from_tar_bytes(path, path.read_bytes())
    else:
        raise ReleaseReadError(f"{path}: no such file or directory")
    return _read(path, files)


def _read(origin: Path, files: Files, inner: str | None = None) -> Release:
    rels = [n for n in files.names if n.startswith("releases/") and n.endswith(".rel")]
    parsed: dict[str, tuple[str, str, str, list[RelApp]]] = {}
    for n in rels:
        if n.count("/") not in (1, 2):
            continue
        try:
            parsed[n] = parse_rel(files.read(n))
        except (ValueError, TypeError, IndexError, UnicodeDecodeError):
            continue
    # releases/VSN/*.rel whose VSN dir matches the version inside: the release's own files
    versioned = {n: p for n, p in parsed.items() if n.count("/") == 2 and n.split("/")[1] == p[1]}
    if not versioned:
        inner_tars = [n for n in files.names if re.fullmatch(r"releases/[^/]+/[^/]+\.tar\.gz", n)]
        if inner_tars and inner is None:
            member = max(inner_tars)
            return _read(origin, Files.from_tar_bytes(origin, files.read(member)), inner=member)
        raise ReleaseReadError(f"{origin.name}: not a release (no releases/VSN/NAME.rel inside)")
    vsns = sorted({p[1] for p in versioned.values()}, key=version_key)
    vsn = vsns[-1]
    if len(vsns) > 1 and "releases/start_erl.data" in files:
        started = files.read("releases/start_erl.data").decode().split()
        if len(started) == 2 and started[1] in vsns:
            vsn = started[1]
    member, (name, _, erts, apps) = next((n, p) for n, p in sorted(versioned.items()) if p[1] == vsn)
    top = {n for n, p in parsed.items() if n.count("/") == 1 and p[1] == vsn}
    if inner is not None or f"releases/{vsn}/{name}.sh" in files \
            or any(n.startswith(f"releases/{vsn}/libexec/") for n in files.names):
        layout = "distillery"       # its per-version script (release_rc_main) and libexec
    elif f"releases/{name}-{vsn}.rel" in top:
        layout = "systools"
    elif f"releases/{name}.rel" in top or _relx_marks(files, name, vsn):
        layout = "relx"
    else:
        layout = "mix"
    return Release(name=name, vsn=vsn, erts=erts, apps=apps, layout=layout, rel_member=member,
                   rel_bytes=files.read(member), files=files, origin=origin, inner=inner)


def _relx_marks(files: Files, name: str, vsn: str) -> bool:
    """A relx release dir (its tar step adds releases/NAME.rel; the dir has none): relx's
    versioned start script, nodetool or its RELEASES; mix writes none of them."""
    return any(n in files for n in (f"bin/{name}-{vsn}", "bin/nodetool", "releases/RELEASES"))


def parse_rel(data: bytes) -> tuple[str, str, str, list[RelApp]]:
    """{release, {Name, Vsn}, {erts, Erts}, [{App, Vsn} | {App, Vsn, Type} | ...]}."""
    from ..release.tarball import parse_consult
    from ..release.terms import text

    term: Any = parse_consult(data.decode("utf-8"))
    if not (isinstance(term, tuple) and len(term) == 4 and term[0] == "release"):
        raise ValueError("not a .rel term")
    (name, vsn), (_, erts), apps = term[1], term[2], term[3]
    return text(name), text(vsn), text(erts), [RelApp(str(a[0]), text(a[1])) for a in apps]


def version_key(v: str) -> tuple:
    """Order versions the way people read them: 0.10.0 after 0.9.2, 1.0.0-rc1 before 1.0.0."""
    main, _, pre = v.partition("-")
    parts = tuple((2, int(p), "") if p.isdigit() else (1, 0, p) for p in re.split(r"[.+]", main))
    return parts + ((0, 0, "") if not pre else (-1, 0, pre),)
