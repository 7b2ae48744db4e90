"""release/tarbytes.py: one-call gunzip and the read-ahead, on real files. No node needed."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import pytest

from pyrlang_deploy.release.tarbytes import Prefetch, gunzip, tar_bytes


def test_gunzip_one_member_and_several():
    body = os.urandom(3000) * 3
    assert gunzip(gzip.compress(body)) == body
    assert gunzip(gzip.compress(body[:100]) + gzip.compress(body[100:])) == body   # two members
    assert tar_bytes(body) == body                                                 # not gzip: as is
    with pytest.raises(EOFError):
        gunzip(gzip.compress(body)[:-20])                                          # cut short


def test_prefetch_finds_a_file_however_it_is_spelt(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "old.tar.gz").write_bytes(gzip.compress(b"old tar"))
    (tmp_path / "rel").mkdir()
    pre = Prefetch(["./old.tar.gz", "rel", "missing.tar.gz"])
    assert pre.get(Path("old.tar.gz")) == b"old tar"
    assert pre.get(Path("rel")) is None             # a release dir: read the normal way
    assert pre.get("missing.tar.gz") is None        # the normal path words the error
    assert pre.get("never-asked.tar.gz") is None
