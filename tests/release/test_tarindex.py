"""release/tarindex.py against tarfile on archives tarfile writes (every format a builder
uses), on a real erl_tar tarball, and on damaged input. No node needed."""

from __future__ import annotations

import io
import subprocess
import tarfile

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pyrlang_deploy.release import tarindex


def _archive(fmt: int, members: list[tuple[str, str, bytes | str]]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as t:
        for name, kind, body in members:
            info = tarfile.TarInfo(name)
            info.mtime, info.mode = 1_700_000_000, 0o755 if name.endswith("erlexec") else 0o644
            if kind == "file":
                info.size = len(body)
                t.addfile(info, io.BytesIO(body))
                continue
            info.type = {"dir": tarfile.DIRTYPE, "symlink": tarfile.SYMTYPE, "hardlink": tarfile.LNKTYPE}[kind]
            if kind == "dir":
                info.mode = 0o755
            else:
                info.linkname = body
            t.addfile(info)
    return buf.getvalue()


def _same_as_tarfile(data: bytes) -> list[tarindex.Entry]:
    entries = tarindex.scan(data)
    with tarfile.open(fileobj=io.BytesIO(data)) as t:
        members = t.getmembers()
    assert [e.name for e in entries] == [m.name.removeprefix("./").rstrip("/") for m in members]
    for e, m in zip(entries, members):
        if m.isreg():
            assert (e.kind, e.size, e.offset, e.mode, e.mtime) == ("file", m.size, m.offset_data, m.mode & 0o7777, m.mtime)
        elif m.issym():
            assert (e.kind, e.linkname) == ("symlink", m.linkname)
        elif m.islnk():
            assert (e.kind, e.linkname) == ("hardlink", m.linkname)
        elif m.isdir():
            assert e.kind == "dir"
    return entries


LONG = "lib/" + "a_rather_long_application_name_" * 4 + "-1.0.0/ebin/" + "module_" * 20 + ".beam"
MEMBERS = [
    ("lib/demo-0.0.2", "dir", b""),
    ("lib/demo-0.0.2/ebin/demo.app", "file", b"{application, demo, []}.\n"),
    ("lib/demo-0.0.2/ebin/empty.beam", "file", b""),
    ("erts-13.1.5/bin/erlexec", "file", b"\x7fELF" + bytes(1000)),
    (LONG, "file", b"x" * 513),
    ("releases/0.0.2/start.boot", "file", b"boot" * 200),
    ("bin/demo", "symlink", "../releases/0.0.2/demo.sh"),
    ("bin/demo-0.0.2", "hardlink", "lib/demo-0.0.2/ebin/demo.app"),
    ("releases/" + "v" * 120 + "/link", "symlink", "../" + "t" * 150),
]


@pytest.mark.parametrize("fmt", [tarfile.GNU_FORMAT, tarfile.PAX_FORMAT], ids=["gnu", "pax"])
def test_formats_with_long_names_and_links(fmt):
    data = _archive(fmt, MEMBERS)
    entries = _same_as_tarfile(data)
    by = {e.name: e for e in entries}
    assert data[by[LONG].offset:by[LONG].offset + 513] == b"x" * 513
    assert by["erts-13.1.5/bin/erlexec"].mode == 0o755
    assert by["bin/demo"].linkname == "../releases/0.0.2/demo.sh"


def test_ustar_prefix_field():
    # a 150-byte path fits ustar only through its 155-byte prefix field
    name = "lib/" + "p" * 90 + "/ebin/" + "m" * 50 + ".beam"
    data = _archive(tarfile.USTAR_FORMAT, [(name, "file", b"abc")])
    assert [e.name for e in _same_as_tarfile(data)] == [name]


def test_erl_tar_tarball(tmp_path):
    """What systools:make_tar and relx write: erl_tar's own headers."""
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "f.txt").write_bytes(b"hello" * 300)
    (tmp_path / "d" / ("n" * 120 + ".txt")).write_bytes(b"long")
    expr = ('ok = erl_tar:create("out.tar", [{"d/f.txt", "d/f.txt"}, '
            '{"d/' + "n" * 120 + '.txt", "d/' + "n" * 120 + '.txt"}]), halt().')
    subprocess.run(["erl", "-noshell", "-eval", expr], cwd=tmp_path, check=True, timeout=60)
    entries = _same_as_tarfile((tmp_path / "out.tar").read_bytes())
    assert [e.name for e in entries] == ["d/f.txt", "d/" + "n" * 120 + ".txt"]


def test_damage_is_refused_not_misread():
    data = bytearray(_archive(tarfile.GNU_FORMAT, MEMBERS[:3]))
    data[10] ^= 0xFF                                    # a name byte: the checksum no longer adds up
    with pytest.raises(tarindex.Unsupported, match="checksum"):
        tarindex.scan(bytes(data))
    whole = _archive(tarfile.GNU_FORMAT, [("big", "file", b"z" * 5000)])
    with pytest.raises(tarindex.Unsupported, match="past the end"):
        tarindex.scan(whole[:2048])                     # the member's data cut short


def test_sparse_is_left_to_tarfile():
    info = tarfile.TarInfo("sparse")
    info.type = tarfile.GNUTYPE_SPARSE
    block = info.tobuf(tarfile.GNU_FORMAT)
    with pytest.raises(tarindex.Unsupported, match="type"):
        tarindex.scan(block + bytes(1024))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.text(st.characters(min_codepoint=48, max_codepoint=122), min_size=1, max_size=140),
                          st.binary(max_size=700)), min_size=1, max_size=6, unique_by=lambda t: t[0]),
       st.sampled_from([tarfile.GNU_FORMAT, tarfile.PAX_FORMAT]))
def test_any_names_and_sizes(files, fmt):
    members = [(f"d/{name}", "file", body) for name, body in files]
    data = _archive(fmt, members)
    entries = _same_as_tarfile(data)
    assert [bytes(data[e.offset:e.offset + e.size]) for e in entries] == [b for _, _, b in members]


@pytest.mark.parametrize("fmt", [tarfile.GNU_FORMAT, tarfile.PAX_FORMAT], ids=["gnu", "pax"])
def test_a_members_bytes_carry_its_long_name(fmt):
    """payload.py copies [start, end) of each kept member: alone, it must still read back
    as that member, long name and all."""
    data = _archive(fmt, MEMBERS)
    for e in tarindex.scan(data):
        alone = data[e.start:e.end] + bytes(2 * tarindex.BLOCK)
        with tarfile.open(fileobj=io.BytesIO(alone)) as t:
            (m,) = t.getmembers()
            assert m.name.rstrip("/") == e.name
            if m.isreg():
                assert t.extractfile(m).read() == data[e.offset:e.offset + e.size]


def test_read_hands_what_scan_refuses_to_tarfile():
    """A member type the scan does not know (here a GNU volume header) goes to tarfile:
    read() still gives every member, marked as read by tarfile (start -1, so payload.py
    rewrites rather than copies)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as t:
        vol = tarfile.TarInfo("volume-label")
        vol.type = b"V"
        t.addfile(vol)
        info = tarfile.TarInfo("lib/a-1/ebin/a.app")
        info.size = 3
        t.addfile(info, io.BytesIO(b"abc"))
    data = buf.getvalue()
    with pytest.raises(tarindex.Unsupported):
        tarindex.scan(data)
    entries = tarindex.read(data)
    assert "lib/a-1/ebin/a.app" in [e.name for e in entries]
    app = next(e for e in entries if e.name.endswith("a.app"))
    assert data[app.offset:app.offset + app.size] == b"abc" and app.start == -1
