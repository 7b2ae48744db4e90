"""Release layouts from tarball member names, boot versions, unsafe entries (pure); the
layouts of tarballs built by the real tools, read by inspect_tarball."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from pyrlang_deploy.errors import PreflightError
from pyrlang_deploy.release.layouts import detect, kept_old, next_boot, script_vsn, unsafe_entry
from pyrlang_deploy.release.tarball import inspect_tarball

REL = '{release, {"app", "1.0.1"}, {erts, "13.1.5"}, [{kernel, "8.5.3"}, {app, "1.0.1"}]}.\n'


@pytest.mark.parametrize("members,tool,unpack,restore", [
    (["releases/app-1.0.1.rel", "releases/1.0.1/app-1.0.1.rel"], "systools", "app-1.0.1", None),
    (["releases/app.rel", "releases/1.0.1/app.rel", "bin/app-1.0.1"], "relx", "app", None),
    (["releases/1.0.1/app.rel", "releases/1.0.1/consolidated/Elixir.Enumerable.beam"], "mix", "1.0.1/app",
     "releases/1.0.1/app.rel"),
    (["releases/1.0.1/app.rel", "releases/1.0.1/app.sh", "releases/1.0.1/libexec/env.sh"], "distillery",
     "1.0.1/app", "releases/1.0.1/app.rel"),
    (["releases/app.rel", "releases/1.0.1/app.rel", "releases/1.0.1/app.sh"], "distillery", "app", None),
    (["releases/1.0.1/app.rel", "releases/1.0.1/relup"], "other", "1.0.1/app", "releases/1.0.1/app.rel"),
])
def test_unpack_name_comes_from_the_content(members, tool, unpack, restore):
    lay = detect(members, "app", "1.0.1")
    assert (lay.tool, lay.unpack_name, lay.restore_rel) == (tool, unpack, restore)
    assert lay.upload_name == "app-1.0.1.tar.gz" and lay.placed == f"{unpack}.tar.gz"


def test_no_rel_where_release_handler_looks_is_refused():
    with pytest.raises(PreflightError, match="could not unpack"):
        detect(["releases/app.rel"], "app", "1.0.1")


def test_next_boot_by_tool():
    relx = '#!/bin/sh\nset -e\nREL_NAME="app"\nREL_VSN="1.0.0"\nERTS_VSN="13.1.5"\n'
    assert script_vsn(relx) == "1.0.0"
    assert script_vsn('REL_VSN="$(cut -d" " -f2 "$START_ERL_DATA")"') is None
    assert next_boot(script=relx, var_start_erl=None, start_erl="13.1.5 1.0.1\n", name="app").vsn == "1.0.0"
    mix = next_boot(script="#!/bin/sh\n", var_start_erl=None, start_erl="13.1.5 0.2.0", name="app")
    assert (mix.vsn, mix.by) == ("0.2.0", "releases/start_erl.data")
    dist = next_boot(script=relx, var_start_erl="13.1.5 1.0.0", start_erl="13.1.5 1.0.1", name="app")
    assert (dist.vsn, dist.by) == ("1.0.0", "var/start_erl.data")


@pytest.mark.parametrize("name,link,hard,bad", [
    ("lib/a-1/ebin/a.beam", None, False, False),
    ("/etc/passwd", None, False, True),
    ("lib/../../x", None, False, True),
    ("lib/a/../b", None, False, False),
    ("lib/a-1/priv/l", "../../b-1/priv/x", False, False),
    ("lib/a-1/priv/l", "../../../../etc", False, True),
    ("lib/a-1/priv/l", "/etc/shadow", False, True),
    ("lib/x", "../outside", True, True),
])
def test_unsafe_entries(name, link, hard, bad):
    assert (unsafe_entry(name, link=link, hardlink=hard) is not None) == bad


def _tarball(path: Path, members: dict[str, bytes], link: tuple[str, str] | None = None) -> Path:
    with tarfile.open(path, "w:gz") as t:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
        if link:
            info = tarfile.TarInfo(link[0])
            info.type, info.linkname = tarfile.SYMTYPE, link[1]
            t.addfile(info)
    return path


def test_inspect_refuses_an_entry_leaving_the_root_naming_it(tmp_path):
    good = {"releases/app.rel": REL.encode(), "releases/1.0.1/app.rel": REL.encode()}
    info = inspect_tarball(_tarball(tmp_path / "app-1.0.1.tar.gz", good))
    assert info.layout.tool == "relx" and info.unpacked_size == 2 * len(REL)
    bad = _tarball(tmp_path / "bad-1.0.1.tar.gz", {**good, "lib/../../evil": b"x"})
    with pytest.raises(PreflightError, match=r"unsafe entry 'lib/../../evil'"):
        inspect_tarball(bad)
    sym = _tarball(tmp_path / "sym-1.0.1.tar.gz", good, link=("lib/app-1.0.1/priv/x", "../../../../../etc"))
    with pytest.raises(PreflightError, match=r"unsafe entry 'lib/app-1.0.1/priv/x'.*symlink"):
        inspect_tarball(sym)


def test_real_tools_tarballs(relx_pair, mix_pair, distillery_pair):
    for pair, tool, unpack in ((relx_pair, "relx", "relxapp"), (mix_pair, "mix", f"{mix_pair.new.vsn}/mixapp"),
                               (distillery_pair, "distillery", "relxapp")):
        for path in (pair.new.tarball, pair.upgrade_tarball):
            info = inspect_tarball(path)
            assert (info.name, info.vsn) == (pair.name, pair.new.vsn)
            assert info.layout.tool == tool and info.layout.unpack_name == unpack
        assert inspect_tarball(pair.upgrade_tarball).relup is not None


def test_kept_old_files_named():
    members = ["bin/app", "bin/app-1.0.1", "bin/nodetool", "releases/app.rel", "releases/1.0.1/app.rel",
               "releases/RELEASES", "releases/start_erl.data", "lib/app-1.0.1/ebin/app.app", "erts-13.1.5/bin/beam.smp"]
    assert kept_old(members, detect(members, "app", "1.0.1")) == ["bin/nodetool"]
