"""Read a release tarball locally before any node sees it: name, version, apps, relup.

A corrupt tarball, a tarball of another version, or one without a relup is refused here,
before anything is uploaded.
"""

from __future__ import annotations

import hashlib
import tarfile
import zlib
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from ..errors import PreflightError
from . import tarindex
from .layouts import Layout, detect, unsafe_entry
from .relup import Relup, parse_relup
from .tarbytes import gunzip
from .terms import text as _text


@dataclass
class TarballInfo:
    path: Path
    name: str
    vsn: str
    erts: str
    apps: dict[str, str]
    relup: Relup | None
    size: int
    sha256: str
    md5: str
    members: list[str] = field(default_factory=list, repr=False)
    layout: Layout | None = None      # where the tool put the .rel: the unpack name (layouts.py)
    unpacked_size: int = 0            # bytes of the regular files inside

    @cached_property
    def omitted_libs(self) -> tuple[str, ...]:
        """The .rel's `APP-VSN` lib dirs the tarball does not carry: a partial tarball (as
        `erldeploy relup` writes by default) relies on the node having them (unpack_release
        only extracts; check_install_release needs every lib dir under ROOT/lib)."""
        have = {m.split("/", 2)[1] for m in self.members if m.startswith("lib/")}
        return tuple(sorted(d for d in (f"{a}-{v}" for a, v in self.apps.items()) if d not in have))


def strip_comments(text: str) -> str:
    """Remove Erlang `%` comments, leaving strings and quoted atoms intact."""
    out, quote, i = [], None, 0
    while i < len(text):
        ch = text[i]
        if quote:
            out.append(ch)
            if ch == "\\" and i + 1 < len(text):
                out.append(text[i + 1])
                i += 1
            elif ch == quote:
                quote = None
        elif ch in "\"'":
            quote = ch
            out.append(ch)
        elif ch == "$" and i + 1 < len(text):  # character literal: $% is not a comment
            out.append(text[i:i + 2])
            i += 1
        elif ch == "%":
            while i < len(text) and text[i] != "\n":
                i += 1
            continue
        else:
            out.append(ch)
        i += 1
    return "".join(out)


def parse_consult(text: str) -> Any:
    """The first term of a file:consult-style text."""
    from ..term import parse_term

    body = strip_comments(text).strip()
    return parse_term(body)


def inspect_tarball(path: Path, expect_vsn: str | None = None) -> TarballInfo:
    """Open and check a release tarball; PreflightError naming the file and the problem otherwise.

    One read of the file: digests of the bytes, then the whole gzip stream
    decompressed in memory (its CRC and length checked: tarfile alone stops quietly
    at a damaged header and would call a corrupt file "no .rel inside"), then the
    tar indexed in memory (tarindex.py). The units' digests the delta needs are taken
    from the same bytes and kept (inventory.remember): ship.py does not read it again.
    """
    path = Path(path)
    if not path.is_file():
        raise PreflightError(f"tarball {path} does not exist")
    from .inventory import contents_from, reading

    with reading(path) as keep:
        try:
            raw = path.read_bytes()
            size, sha, md5 = len(raw), hashlib.sha256(raw).hexdigest(), hashlib.md5(raw).hexdigest()
            data = gunzip(raw)
            del raw
            entries = tarindex.read(data)     # tarfile reads what the index does not, or words why not
            names = [e.name for e in entries]
            for e in entries:   # before anything is read: release_handler would half-unpack it
                link = e.linkname if e.kind in (tarindex.SYMLINK, tarindex.HARDLINK) else None
                why = unsafe_entry(e.name, link=link, hardlink=e.kind == tarindex.HARDLINK)
                if why:
                    raise PreflightError(f"{path.name}: unsafe entry {e.name!r} ({why}): refused, "
                                         "no node was changed")
            short = [e.name for e in entries if e.kind == tarindex.FILE and e.offset + e.size > len(data)]
            if short:
                raise PreflightError(f"{path.name}: corrupt release tarball ({short[0]} is truncated)")
            by_name = {e.name: e for e in entries if e.kind == tarindex.FILE}

            def read(name: str) -> str:
                e = by_name[name]
                return data[e.offset:e.offset + e.size].decode("utf-8")

            rels = [n for n in names if n.startswith("releases/") and n.endswith(".rel") and n.count("/") == 2]
            if not rels:
                raise PreflightError(f"{path.name}: not a release tarball (no releases/VSN/NAME.rel inside)")
            rel_name = rels[0]
            rel = parse_consult(read(rel_name))
            relup_name = f"{rel_name.rsplit('/', 1)[0]}/relup"
            relup = parse_relup(parse_consult(read(relup_name))) if relup_name in by_name else None
            if keep is not None:    # what ship.py needs of it too (unit digests), from this one read
                keep(contents_from(entries, data, size))
        except PreflightError:
            raise
        except (tarfile.TarError, tarindex.Unsupported, OSError, EOFError, zlib.error, UnicodeDecodeError) as e:
            raise PreflightError(f"{path.name}: corrupt release tarball ({e})") from None
        except Exception as e:  # term syntax errors in .rel/relup
            raise PreflightError(f"{path.name}: unreadable .rel or relup ({e})") from None
    try:
        _, (name, vsn), (_, erts), apps = rel[0], rel[1], rel[2], rel[3]
        app_versions = {str(a[0]): _text(a[1]) for a in apps}
    except (TypeError, IndexError, ValueError):
        raise PreflightError(f"{path.name}: malformed .rel file {rel_name}") from None
    info = TarballInfo(path=path, name=_text(name), vsn=_text(vsn), erts=_text(erts), apps=app_versions,
                       relup=relup, size=size, sha256=sha, md5=md5, members=names,
                       unpacked_size=sum(e.size for e in entries if e.kind == tarindex.FILE))
    info.layout = detect(names, info.name, info.vsn)
    if expect_vsn is not None and info.vsn != expect_vsn:
        raise PreflightError(f"{path.name} holds release {info.name} {info.vsn}, not {expect_vsn}")
    return info

