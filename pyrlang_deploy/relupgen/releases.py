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

import re
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ReleaseError
from ..release import tarindex
from ..release.tarbytes import tar_bytes
from ..release.tarindex import FILE, HARDLINK, SYMLINK, Entry


class ReleaseReadError(ReleaseError):
    """OLD or NEW is not a release we can read (message names the file and why)."""


@dataclass(frozen=True)
class RelApp:
    name: str
    vsn: str


class Files:
    """The files of a release root: a tarball held in memory (its members indexed by
    release/tarindex.py), or a directory on disk."""

    def __init__(self, origin: Path, entries: list[Entry] | None, data: bytes = b""):
        self.origin = origin
        self.entries = entries          # None: a directory
        self._data = memoryview(data)   # the uncompressed tarball, when held in memory
        if entries is not None:
            self._by_name = {e.name: e for e in entries}
            self.names = [e.name for e in entries if e.kind in (FILE, SYMLINK)]
        else:
            self._by_name = {}
            self.names = [str(p.relative_to(origin)) for p in origin.rglob("*") if p.is_file()]
        self._set = set(self.names)

    @property
    def is_tar(self) -> bool:
        return self.entries is not None

    def __contains__(self, name: str) -> bool:
        return name in self._set

    def read(self, name: str) -> bytes:
        if self.entries is None:
            return (self.origin / name).read_bytes()
        return self.read_entry(self.resolve(name))

    def resolve(self, name: str) -> Entry:
        """The regular file a member name stands for (links inside the tarball followed)."""
        e = self._by_name.get(name)
        for _ in range(8):
            if e is None or e.kind not in (HARDLINK, SYMLINK):
                break
            name = e.linkname if e.kind == HARDLINK else _join(name.rpartition("/")[0], e.linkname)
            e = self._by_name.get(name)
        if e is None or e.kind != FILE:
            raise ReleaseReadError(f"{self.origin.name}: {name} is not a regular file")
        return e

    def read_entry(self, e: Entry) -> bytes:
        return self._data[e.offset:e.offset + e.size].tobytes()

    @classmethod
    def from_tar_bytes(cls, origin: Path, raw: bytes, *, gunzipped: bool = False) -> Files:
        """raw: the file's bytes (gunzipped here when gzip), or the tar itself (gunzipped)."""
        try:
            data = raw if gunzipped else tar_bytes(raw)
        except (OSError, EOFError, zlib.error) as e:
            raise ReleaseReadError(f"{origin.name}: not a readable tarball ({e})") from None
        entries = _entries(origin, data)
        if not entries:
            raise ReleaseReadError(f"{origin.name}: not a readable tarball (no members)")
        return cls(origin, entries, data)

    @classmethod
    def from_dir(cls, root: Path) -> Files:
        return cls(root, None)


def _entries(origin: Path, data: bytes) -> list[Entry]:
    import tarfile

    try:
        return tarindex.read(data)      # tarfile reads what the index does not, or words why not
    except (tarfile.TarError, tarindex.Unsupported, OSError, EOFError) as e:
        raise ReleaseReadError(f"{origin.name}: not a readable tarball ({e})") from None


def _join(base: str, link: str) -> str:
    """A symlink's target as a member name (one leaving the root keeps a leading '..')."""
    parts = [p for p in base.split("/") if p] if not link.startswith("/") else []
    for p in link.split("/"):
        if p == "..":
            if parts:
                parts.pop()
            else:
                return "../" + link
        elif p not in ("", "."):
            parts.append(p)
    return "/".join(parts)


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


def open_release(path: Path, tar: bytes | None = None) -> Release:
    """tar: the file's tar bytes already read and gunzipped (tarbytes.Prefetch)."""
    path = Path(path)
    if tar is not None:
        files = Files.from_tar_bytes(path, tar, gunzipped=True)
    elif path.is_dir():
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
