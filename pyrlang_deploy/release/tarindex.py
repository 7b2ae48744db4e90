"""The members of an uncompressed tar archive held in memory: names, kinds, where the data is.

    entries = read(data)            # [Entry, ...] in archive order; data: bytes or memoryview
    e.name, e.kind, e.size, e.offset, e.mode, e.mtime, e.linkname
    bytes(data[e.offset:e.offset + e.size])

tarfile builds a TarInfo per member through several layers of Python; a release tarball
has hundreds of members and `erldeploy relup` reads two of them, so the scan was a fifth of
that command's CPU. This reads only what we use. One member is a header block and its data:

    offset  len  field        (POSIX ustar; GNU and pax add the records below)
         0  100  name         NUL-padded
       100    8  mode         octal
       124   12  size         octal, or base-256 when the first byte has its top bit set
       136   12  mtime        octal
       148    8  chksum       octal: sum of the 512 header bytes, this field read as spaces
       156    1  typeflag     "0"/NUL file, "1" hard link, "2" symlink, "5" dir, ...
       157  100  linkname
       257    6  magic        "ustar" (POSIX: "ustar\\0", old GNU: "ustar ")
       345  155  prefix       POSIX only: name = prefix + "/" + name
    then the data, padded to 512 bytes. Two zero blocks end the archive.

Long names come before their member: a GNU "L" (name) or "K" (link name) record whose data
is the name, or a pax "x" record of "LEN key=value\\n" lines (path, linkpath, size, mtime).
Anything else that changes how to read the archive (sparse files, multi-volume, a pax
record this does not read, a damaged header) makes scan() raise Unsupported; read() then
hands that archive to tarfile, which reads it (or refuses, and words why).
"""

from __future__ import annotations

BLOCK = 512
FILE, HARDLINK, SYMLINK, DIR, OTHER = "file", "hardlink", "symlink", "dir", "other"
_KINDS = {b"0": FILE, b"\0": FILE, b"7": FILE, b"1": HARDLINK, b"2": SYMLINK, b"5": DIR,
          b"3": OTHER, b"4": OTHER, b"6": OTHER}
# pax keys that we apply; any other key changes nothing we use (comments, uid, uname, atime)
# except those that change how data is laid out, which we refuse
_PAX_REFUSED = ("GNU.sparse.", "SCHILY.realsize")


class Unsupported(ValueError):
    """This archive needs tarfile (a feature this scan does not read, or damage)."""


class Entry:
    """One member; `offset` is where its data starts in the archive (files only have data)."""

    __slots__ = ("name", "kind", "size", "offset", "linkname", "start", "_header", "_mode", "_mtime")

    def __init__(self, name: str, kind: str, size: int, offset: int, linkname: str = "",
                 header: bytes = b"", mode: int | None = None, mtime: int | None = None, start: int = -1):
        self.name, self.kind, self.size, self.offset, self.linkname = name, kind, size, offset, linkname
        # where its records begin (its long-name or pax records, then its header): the
        # member's bytes in the archive are [start, end); -1 when not known (from_tarfile)
        self.start = start
        # mode and mtime are read from the header when asked (for the few members copied)
        self._header, self._mode, self._mtime = header, mode, mtime

    @property
    def mode(self) -> int:
        return self._mode if self._mode is not None else _octal(self._header[100:108]) & 0o7777

    @property
    def mtime(self) -> int:
        return self._mtime if self._mtime is not None else _octal(self._header[136:148])

    @property
    def end(self) -> int:
        """Just past its data's padding."""
        return self.offset + (self.size + BLOCK - 1) // BLOCK * BLOCK

    def __repr__(self) -> str:
        return f"Entry({self.name!r}, {self.kind}, {self.size} bytes at {self.offset})"


def _str(field: bytes) -> str:
    return field.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")


def _octal(field: bytes) -> int:
    if field[:1] and field[0] & 0x80:                # GNU base-256 (sizes over 8 GiB)
        if field[0] != 0x80:
            raise Unsupported("negative base-256 number")
        return int.from_bytes(field[1:], "big")
    digits = field.split(b"\0", 1)[0].strip()
    try:
        return int(digits, 8) if digits else 0
    except ValueError:
        raise Unsupported(f"bad number {digits[:12]!r} in a tar header") from None


def _pax(record: bytes) -> dict[str, str]:
    out: dict[str, str] = {}
    pos = 0
    while pos < len(record):
        sp = record.find(b" ", pos)
        if sp < 0:
            raise Unsupported("bad pax record")
        try:
            length = int(record[pos:sp])
        except ValueError:
            raise Unsupported("bad pax record length") from None
        line = record[sp + 1:pos + length]
        if length <= 0 or not line.endswith(b"\n") or b"=" not in line:
            raise Unsupported("bad pax record")
        key, _, value = line[:-1].partition(b"=")
        k = key.decode("utf-8", "surrogateescape")
        if k.startswith(_PAX_REFUSED):
            raise Unsupported(f"pax {k}")
        out[k] = value.decode("utf-8", "surrogateescape")
        pos += length
    return out


def scan(data: bytes | memoryview) -> list[Entry]:
    """Every member (files, dirs, links; never the long-name or pax records themselves, but
    each entry's [start, end) spans them: copying those bytes copies the member whole)."""
    view = memoryview(data)
    total = len(view)
    entries: list[Entry] = []
    pos = 0
    long_name: str | None = None
    long_link: str | None = None
    pax: dict[str, str] = {}
    first = 0                                       # where the current member's records began
    while pos + BLOCK <= total:
        h = bytes(view[pos:pos + BLOCK])
        if h.count(0) == BLOCK:
            break                                   # end of archive (tar pads with zeros)
        if sum(h[:148]) + sum(h[156:]) + 8 * 32 != _octal(h[148:156]):
            raise Unsupported(f"bad tar header checksum at byte {pos}")
        flag = h[156:157]
        record = flag in (b"L", b"K", b"x", b"g")   # about the next member, not one itself
        size = int(pax["size"]) if "size" in pax and not record else _octal(h[124:136])
        start = pos + BLOCK
        if start + size > total:
            raise Unsupported(f"member at byte {pos} runs past the end of the archive")
        pos = start + (size + BLOCK - 1) // BLOCK * BLOCK
        if flag in (b"L", b"K"):
            value = _str(bytes(view[start:start + size]))
            long_name, long_link = (value, long_link) if flag == b"L" else (long_name, value)
            continue
        if flag == b"x":
            pax.update(_pax(bytes(view[start:start + size])))
            continue
        if flag == b"g":
            first = pos                             # global defaults: nothing we read, nor copy
            continue
        kind = _KINDS.get(flag)
        if kind is None:
            raise Unsupported(f"tar member type {flag!r}")
        name = _str(h[0:100])
        if h[257:262] == b"ustar" and h[263:265] == b"00" and h[345]:
            name = _str(h[345:500]) + "/" + name    # POSIX prefix (not in old GNU headers)
        name = pax.get("path", long_name or name)
        linkname = pax.get("linkpath", long_link or _str(h[157:257]))
        mtime = int(float(pax["mtime"])) if "mtime" in pax else None
        name = name.removeprefix("./")
        if kind == DIR:
            name = name.rstrip("/")
        entries.append(Entry(name, kind, size if kind == FILE else 0, start, linkname, h, None, mtime, first))
        first = pos
        long_name = long_link = None
        pax = {}
    return entries


def read(data: bytes | memoryview) -> list[Entry]:
    """scan(data), or, for an archive it refuses, tarfile's reading of it as entries (their
    `start` unknown). Raises tarfile.TarError (or Unsupported: a sparse member) when neither
    can read it: the caller words it for its user."""
    try:
        return scan(data)
    except Unsupported:
        pass
    import io
    import tarfile

    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tar:
        return _from_tarfile(tar.getmembers())


def _from_tarfile(members: list) -> list[Entry]:
    """tarfile's members as entries."""
    kinds = ((lambda m: m.isreg(), FILE), (lambda m: m.islnk(), HARDLINK), (lambda m: m.issym(), SYMLINK),
             (lambda m: m.isdir(), DIR))
    out = []
    for m in members:
        if m.issparse():
            raise Unsupported(f"{m.name}: a sparse file")
        kind = next((k for test, k in kinds if test(m)), OTHER)
        out.append(Entry(m.name.removeprefix("./").rstrip("/") if kind == DIR else m.name.removeprefix("./"),
                         kind, m.size if kind == FILE else 0, m.offset_data, m.linkname, b"",
                         m.mode & 0o7777, int(m.mtime)))
    return out
