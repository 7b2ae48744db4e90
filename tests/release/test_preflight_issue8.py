"""Preflight refusals of issue 8 on a real demo cluster: a stale unpacked release (and
--replace-unpacked), a tarball with entries leaving the release root, an unwritable
releases dir, a releases dir without room for the release (a small tmpfs mounted there).
Every refusal happens before any node changes."""

from __future__ import annotations

import io
import shutil
import subprocess
import tarfile

from pyrlang_deploy.term import format_term, parse_term

from .conftest import releases_of, server_of


def _rebuilt(src, dest, *, relup_from: str | None = None, extra: tuple[str, bytes, str | None] | None = None):
    """A copy of a tarball: its relup keeping only the up/down entries of relup_from, and/or
    one extra member (name, data, symlink target)."""
    with tarfile.open(src, "r:gz") as tin, tarfile.open(dest, "w:gz") as tout:
        for m in tin:
            f = tin.extractfile(m) if m.isfile() else None
            if relup_from and m.name.endswith("/relup"):
                vsn, ups, downs = parse_term(f.read().decode().strip())
                body = (format_term((vsn, [u for u in ups if u[0] == relup_from],
                                     [d for d in downs if d[0] == relup_from])) + ".\n").encode()
                m.size = len(body)
                tout.addfile(m, io.BytesIO(body))
            else:
                tout.addfile(m, f)
        if extra:
            name, data, link = extra
            info = tarfile.TarInfo(name)
            if link:
                info.type, info.linkname = tarfile.SYMTYPE, link
                tout.addfile(info)
            else:
                info.size = len(data)
                tout.addfile(info, io.BytesIO(data))
    return dest


def test_stale_unpacked_release_is_named_then_replaced(cli, demo, demo_build, tmp_path):
    # "you build 0.0.2 -> 0.0.3 and unpack it; later the real 0.0.3 comes": the servers'
    # unpacked 0.0.3 only knows 0.0.2
    stale = _rebuilt(demo_build.tars["0.0.3"], tmp_path / "demo-0.0.3.tar.gz", relup_from="0.0.2")
    for n in demo.nodes[:2]:
        shutil.copy(stale, demo.root_of(n) / "releases" / "demo-0.0.3.tar.gz")
        assert demo.eval(n, 'release_handler:unpack_release("demo-0.0.3")') == '{ok,"0.0.3"}'
    tar = str(demo_build.tars["0.0.3"])
    p = cli("install", "0.0.3", "--tar", tar, "--cluster")
    assert p.returncode == 1, p.stdout + p.stderr
    for n in demo.nodes[:2]:
        assert n in p.stderr
    assert "already unpacked from another build" in p.stderr and "--replace-unpacked" in p.stderr
    assert "enoent" not in p.stderr
    for n in demo.nodes:
        assert server_of(demo, n)[0] == "0.0.1"
    p = cli("install", "0.0.3", "--tar", tar, "--cluster", "--replace-unpacked")
    assert p.returncode == 0, p.stdout + p.stderr
    for n in demo.nodes:
        assert server_of(demo, n)[0] == "0.0.3" and releases_of(demo, n)["0.0.3"] == "permanent"


def test_tarball_entries_leaving_the_root_are_refused_by_dry_run(cli, demo, demo_build, tmp_path):
    src = demo_build.tars["0.0.2"]
    for extra, needle in ((("lib/../../escaped", b"x", None), "lib/../../escaped"),
                          (("lib/demo-0.0.2/priv/out", b"", "../../../../../etc/passwd"), "lib/demo-0.0.2/priv/out")):
        bad = _rebuilt(src, tmp_path / "demo-0.0.2.tar.gz", extra=extra)
        p = cli("install", "0.0.2", "--tar", str(bad), "--cluster", "--dry-run")
        assert p.returncode == 1 and "unsafe entry" in p.stderr and needle in p.stderr, p.stdout + p.stderr
    for n in demo.nodes:
        assert releases_of(demo, n) == {"0.0.1": "permanent"}


def test_unwritable_releases_dir_is_refused_naming_the_node(cli, demo, demo_build):
    node = demo.nodes[2]
    rdir = demo.root_of(node) / "releases"
    # immutable: even root (these tests' user) cannot create a file there, as on a read-only mount
    subprocess.run(["chattr", "+i", str(rdir)], check=True)
    try:
        p = cli("install", "0.0.2", "--tar", str(demo_build.tars["0.0.2"]), "--cluster")
    finally:
        subprocess.run(["chattr", "-i", str(rdir)], check=True)
    assert p.returncode == 1 and f"{node}: the releases dir" in p.stderr and "not writable" in p.stderr, p.stderr
    for n in demo.nodes:       # refused before the canary was touched
        assert releases_of(demo, n) == {"0.0.1": "permanent"}
        assert not list((demo.root_of(n) / "releases").glob("*.tar.gz*"))


def test_releases_dir_without_room_is_refused_naming_the_node(cli, demo, demo_build, tmp_path):
    """A real full file system: the node's releases dir moved onto a tmpfs (we are root)
    with room for what is there and 64 KiB more, less than tarball plus unpacked release."""
    from pyrlang_deploy.release.tarball import inspect_tarball

    node = demo.nodes[1]
    rdir = demo.root_of(node) / "releases"
    tar = demo_build.tars["0.0.2"]
    info = inspect_tarball(tar)
    used = sum(f.stat().st_size + 4096 for f in rdir.rglob("*")) + 4096
    size_kib = (used + 64 * 1024) // 1024
    assert size_kib * 1024 < used + info.size + info.unpacked_size   # the test can fail
    saved = tmp_path / "releases-saved"
    shutil.copytree(rdir, saved, symlinks=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_kib}k", "tmpfs", str(rdir)], check=True)
    try:
        subprocess.run(["cp", "-a", f"{saved}/.", str(rdir)], check=True)
        p = cli("install", "0.0.2", "--tar", str(tar), "--cluster")
        left = sorted(f.name for f in rdir.iterdir())
    finally:
        subprocess.run(["umount", "-l", str(rdir)], check=True)
    assert p.returncode == 1, p.stdout + p.stderr
    assert f"{node}: " in p.stderr and f"KiB free in {rdir}" in p.stderr and "needs" in p.stderr, p.stderr
    assert len(p.stderr.strip().splitlines()) == 1, p.stderr
    assert left == sorted(f.name for f in saved.iterdir())   # nothing staged on the small fs
    for n in demo.nodes:       # refused before the canary was touched
        assert releases_of(demo, n) == {"0.0.1": "permanent"}
        assert server_of(demo, n)[0] == "0.0.1"


def test_an_app_dir_from_another_build_is_refused_naming_the_node(cli, demo, demo_build):
    """lib/demo-0.0.2 already on a node, from another build (one beam byte differs): unpack_release
    extracts with keep_old_files, so that copy would stay. Refused before any change; the same
    dir with the tarball's own content is fine (the next node)."""
    import tarfile

    tar = demo_build.tars["0.0.2"]
    with tarfile.open(tar, "r:gz") as t:
        files = {m.name: t.extractfile(m).read() for m in t if m.isfile() and m.name.startswith("lib/demo-")}
    rebuilt, same = demo.nodes[2], demo.nodes[1]
    for node, change in ((rebuilt, True), (same, False)):
        for name, data in files.items():
            if change and name.endswith("demo_server.beam"):
                data = data[:-1] + bytes([data[-1] ^ 0xFF])
            p = demo.root_of(node) / name
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(data)
    p = cli("install", "0.0.2", "--tar", str(tar), "--cluster")
    assert p.returncode == 1, p.stdout + p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and f"{rebuilt}: lib/demo-0.0.2 there is another build" in lines[0], p.stderr
    assert same not in lines[0]
    for n in demo.nodes:
        assert releases_of(demo, n) == {"0.0.1": "permanent"}
        assert server_of(demo, n)[0] == "0.0.1"
    shutil.rmtree(demo.root_of(rebuilt) / "lib" / "demo-0.0.2")    # as the message says
    p = cli("install", "0.0.2", "--tar", str(tar), "--cluster")
    assert p.returncode == 0, p.stdout + p.stderr
    for n in demo.nodes:
        assert server_of(demo, n)[0] == "0.0.2"


def test_failed_unpack_removes_what_was_uploaded(cli, demo, demo_build, tmp_path):
    # the .rel release_handler reads (releases/demo-0.0.2.rel) is broken, the one preflight reads
    # (releases/0.0.2/demo-0.0.2.rel) is fine: unpack_release refuses it after the upload
    bad = tmp_path / "demo-0.0.2.tar.gz"
    with tarfile.open(demo_build.tars["0.0.2"], "r:gz") as tin, tarfile.open(bad, "w:gz") as tout:
        for m in tin:
            if m.name == "releases/demo-0.0.2.rel":
                body = b"{release, broken"
                m.size = len(body)
                tout.addfile(m, io.BytesIO(body))
            else:
                tout.addfile(m, tin.extractfile(m) if m.isfile() else None)
    p = cli("install", "0.0.2", "--tar", str(bad), "--cluster", "--no-agent")
    assert p.returncode == 1 and "unpack_release" in p.stdout + p.stderr, p.stdout + p.stderr
    assert "the uploaded tarball was removed" in p.stdout + p.stderr
    for n in demo.nodes:
        rdir = demo.root_of(n) / "releases"
        assert not list(rdir.glob("*.tar.gz*")) and not (rdir / "0.0.2").exists() and not (rdir / "demo-0.0.2.rel").exists()
        assert releases_of(demo, n) == {"0.0.1": "permanent"}
