"""The appup generator on literal inputs: beams compiled here by erlc, .rel pairs and small
tarballs written here. No node is started."""

from __future__ import annotations

import io
import subprocess
import tarfile
from pathlib import Path

import pytest

from pyrlang_deploy.relupgen import appup as ap
from pyrlang_deploy.relupgen import warnings as wn
from pyrlang_deploy.relupgen.beam import BeamError, read_atoms, read_beam
from pyrlang_deploy.relupgen.plan import build_plan
from pyrlang_deploy.relupgen.releases import Files, _read, parse_rel, version_key
from pyrlang_deploy.term import Atom
from tests.support.nodes import require


def compile_erl(tmp: Path, sources: dict[str, str], *opts: str) -> dict[str, bytes]:
    """{module: source} -> {module: beam bytes}, by erlc in one run."""
    tmp.mkdir(parents=True, exist_ok=True)
    files = []
    for mod, text in sources.items():
        (tmp / f"{mod}.erl").write_text(text)
        files.append(str(tmp / f"{mod}.erl"))
    p = subprocess.run([require("erlc"), *opts, "-o", str(tmp), *files], check=False, capture_output=True, text=True)
    assert p.returncode == 0, p.stdout + p.stderr
    return {m: (tmp / f"{m}.beam").read_bytes() for m in sources}


SERVER = """-module(srv).
-behaviour(gen_server).
-export([init/1, handle_call/3, handle_cast/2, code_change/3]).
-record(state, {count = 0{EXTRA}}).
init([]) -> {ok, #state{}}.
handle_call(_, _, S) -> {reply, S#state.count, S}.
handle_cast(_, S) -> {noreply, S}.
code_change(_Old, State, _Extra) -> {CC}.
"""


def server(extra: str = "", cc: str = "{ok, State}") -> str:
    return SERVER.replace("{EXTRA}", extra).replace("{CC}", cc)


SUP = """-module(sup).
-behaviour(supervisor).
-export([init/1]).
init([]) -> {ok, {#{strategy => one_for_one}, [{CHILD}]}}.
"""

V1 = {
    "srv": server(),
    "sup": SUP.replace("{CHILD}", ""),
    "plain": "-module(plain).\n-export([f/0]).\nf() -> 1.\n",
    "old": "-module(old).\n-export([g/0]).\ng() -> old.\n",
    "same": "-module(same).\n-export([h/0]).\nh() -> same.\n",
}
V2 = {
    "srv": server(", last = none", "{ok, State}"),
    "sup": SUP.replace("{CHILD}", "#{id => srv, start => {srv, start_link, []}}"),
    "plain": "-module(plain).\n-export([f/0]).\nf() -> {2, new:n()}.\n",
    "new": "-module(new).\n-export([n/0]).\nn() -> new.\n",
    "same": "%% a comment that moves the code down\n\n-module(same).\n-export([h/0]).\nh() -> same.\n",
}


@pytest.fixture(scope="module")
def beams(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("beams")
    old = {m: read_beam(b) for m, b in compile_erl(tmp / "v1", V1, "+debug_info").items()}
    new = {m: read_beam(b) for m, b in compile_erl(tmp / "v2", V2, "+debug_info", "-DUNUSED=1").items()}
    return old, new


def test_beam_reader_exports_imports_behaviours(beams):
    old, new = beams
    assert ("code_change", 3) in new["srv"].exports and new["srv"].implements_code_change()
    assert new["srv"].behaviours == {"gen_server"} and new["sup"].is_supervisor()
    assert ("new", "n", 0) in new["plain"].imports and "new" in new["plain"].called_modules
    assert new["srv"].records["state"] == ("count", "last") and old["srv"].records["state"] == ("count",)
    assert new["srv"].code_change_passes_state is True
    assert old["plain"].records == {} and old["plain"].code_change_passes_state is None


def test_digest_ignores_debug_info_lines_and_compile_options(beams, tmp_path):
    old, new = beams
    assert old["same"].digest == new["same"].digest           # moved two lines, other -D
    bare = read_beam(compile_erl(tmp_path, {"same": V1["same"]})["same"])     # no debug info
    assert bare.digest == old["same"].digest and bare.records is None
    assert "Dbgi" in old["same"].chunks
    assert old["plain"].digest != new["plain"].digest


def test_elixir_recompiled_module_is_not_a_change(tmp_path):
    src = 'defmodule Ex.Counter do\n  use GenServer\n  def init(s), do: {:ok, s}\nend\n'
    digests = []
    for d, text in (("a", src), ("b", "\n\n" + src), ("c", src.replace("{:ok, s}", "{:ok, s + 1}"))):
        (tmp_path / d).mkdir()
        (tmp_path / d / "c.ex").write_text(text)
        p = subprocess.run([require("elixirc"), "-o", str(tmp_path / d), str(tmp_path / d / "c.ex")],
                           check=False, capture_output=True, text=True, cwd=tmp_path / d)
        assert p.returncode == 0, p.stderr
        info = read_beam((tmp_path / d / "Elixir.Ex.Counter.beam").read_bytes())
        assert info.implements_code_change() and info.records is None   # Elixir's debug info: no records
        digests.append(info.digest)
    assert digests[0] == digests[1] != digests[2]


def test_generated_appup_every_kind_of_change(beams):
    old, new = beams
    a = ap.generate("app", "1", "2", old, new)
    up = [(Atom("add_module"), Atom("new")),
          (Atom("load_module"), Atom("plain"), [Atom("new")]),
          (Atom("update"), Atom("srv"), (Atom("advanced"), [])),
          (Atom("update"), Atom("sup"), Atom("supervisor")),
          (Atom("delete_module"), Atom("old"))]
    assert a.up == up
    # inverse, in reverse: the deleted module comes back first, the added one goes last
    assert a.down == [(Atom("add_module"), Atom("old")),
                      (Atom("load_module"), Atom("plain")),
                      (Atom("update"), Atom("srv"), (Atom("advanced"), [])),
                      (Atom("update"), Atom("sup"), Atom("supervisor")),
                      (Atom("delete_module"), Atom("new"))]
    assert a.term == ("2", [("1", up)], [("1", a.down)])
    assert a.changes.loaded == ["plain"] and a.changes.code_change == ["srv"]
    assert "same" not in repr(a.up)
    assert a.text().endswith("}.\n") and '{"2",[{"1",[{add_module,new}' in a.text()


def test_dependency_order_calls_first_and_survives_cycles():
    deps = {"a": ["b"], "b": ["c"], "c": [], "x": ["y"], "y": ["x"]}
    order = ap.dependency_order({"a", "b", "c", "x", "y"}, deps)
    assert order.index("c") < order.index("b") < order.index("a")
    assert sorted(order) == ["a", "b", "c", "x", "y"]


def test_user_appups_win():
    gen = ap.Appup("app", "1", "2", [("g",)], [("g",)], "generated")
    gen.term = ("2", [("1", gen.up)], [("1", gen.down)])
    mine = ("2", [(b"1(\\..*)?", [(Atom("load_module"), Atom("m"))])], [("1", [])])
    chosen, note = ap.choose_appup(gen, mine, None)
    assert chosen.source == "ebin" and chosen.up == [(Atom("load_module"), Atom("m"))] and note is None
    chosen, _ = ap.choose_appup(gen, mine, ("2", [("1", [])], [("1", [])]))
    assert chosen.source == "appup-dir" and chosen.up == []
    other = ("2", [("0.9", [])], [("0.9", [])])       # covers other versions: ours is added
    chosen, note = ap.choose_appup(gen, other, None)
    assert chosen.source == "generated" and [e[0] for e in chosen.term[1]] == ["1", "0.9"] and note
    chosen, note = ap.choose_appup(gen, ("3", [], []), None)     # another version's appup
    assert chosen is gen and "is for 3" in note
    assert ap.matches(b"1\\.0\\..*", "1.0.7") and not ap.matches(b"1\\.0", "1.0.7")


def test_state_record_warning_only_without_conversion(beams, tmp_path):
    old, new = beams
    a = ap.generate("app", "1", "2", old, new)
    ws = wn.module_warnings(a, old, new)
    assert [w.kind for w in ws] == ["state_record"] and "#state" in ws[0].message
    converting = read_beam(compile_erl(tmp_path, {"srv": server(", last = none",
                           "{ok, erlang:append_element(State, none)}")}, "+debug_info")["srv"])
    assert converting.code_change_passes_state is False
    assert wn.module_warnings(a, old, {**new, "srv": converting}) == []


def test_release_warnings():
    ws = wn.release_warnings("r", "2", "1.9", "13.1", "13.2", {"kernel": "8.5", "ranch": "1.7"},
                             {"kernel": "8.6", "ranch": "2.1"}, restart=False)
    kinds = [w.kind for w in ws]
    assert kinds == ["not_newer", "restart_new_emulator", "unsafe_app"]
    assert "erts 13.1 -> 13.2, kernel 8.5 -> 8.6" in ws[1].message
    assert wn.release_warnings("r", "1", "2", "e", "e", {"a": "1"}, {"a": "2"}, restart=False) == []


def test_rel_files_and_versions():
    mix = b'{release,{"shop","0.2.0"},{erts,"13.1.5"},[{kernel,"8.5.3",permanent},{shop,"0.2.0",permanent}]}.'
    name, vsn, erts, apps = parse_rel(mix)
    assert (name, vsn, erts) == ("shop", "0.2.0", "13.1.5") and [a.name for a in apps] == ["kernel", "shop"]
    assert sorted(["0.10.0", "0.9.2", "1.0.0", "1.0.0-rc1"], key=version_key) == \
        ["0.9.2", "0.10.0", "1.0.0-rc1", "1.0.0"]


def _tar(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as t:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _rel(name: str, vsn: str, apps: dict[str, str], erts: str = "13.1.5") -> bytes:
    body = ",".join(f'{{{a},"{v}"}}' for a, v in apps.items())
    return f'{{release,{{"{name}","{vsn}"}},{{erts,"{erts}"}},[{body}]}}.\n'.encode()


def _release(layout: str, vsn: str, apps: dict[str, str], libs: dict[str, bytes]):
    rel = _rel("r", vsn, apps)
    files = {f"lib/{k}": v for k, v in libs.items()}
    if layout == "systools":
        files |= {f"releases/r-{vsn}.rel": rel, f"releases/{vsn}/r-{vsn}.rel": rel}
    elif layout == "relx":
        files |= {"releases/r.rel": rel, f"releases/{vsn}/r.rel": rel}
    elif layout == "mix":
        files |= {f"releases/{vsn}/r.rel": rel}
    else:       # distillery: the release is the inner tarball
        files = {f"releases/{vsn}/r.tar.gz": _tar(files | {f"releases/{vsn}/r.rel": rel})}
    origin = Path(f"r-{vsn}.tar.gz")
    return _read(origin, Files.from_tar_bytes(origin, _tar(files)))


@pytest.mark.parametrize("layout", ["systools", "relx", "mix", "distillery"])
def test_layouts_are_recognised(layout):
    r = _release(layout, "2", {"kernel": "8.5.3", "a": "2"}, {"a-2/ebin/a.app": b"{application,a,[]}."})
    assert (r.layout, r.name, r.vsn, r.app_versions) == (layout, "r", "2", {"kernel": "8.5.3", "a": "2"})
    assert r.ebin("a", "2") == {"a.app": "lib/a-2/ebin/a.app"}


def test_plan_added_removed_changed_and_core_apps(beams, tmp_path):
    v1 = compile_erl(tmp_path / "a1", {"plain": V1["plain"]})
    v2 = compile_erl(tmp_path / "a2", {"plain": V2["plain"], "new": V2["new"]})
    k = compile_erl(tmp_path / "k", {"same": V1["same"]})
    old = _release("systools", "1", {"kernel": "8.5", "a": "1", "gone": "1"},
                   {"a-1/ebin/plain.beam": v1["plain"], "kernel-8.5/ebin/same.beam": k["same"]})
    new = _release("systools", "2", {"kernel": "8.6", "a": "2", "fresh": "1"},
                   {"a-2/ebin/plain.beam": v2["plain"], "a-2/ebin/new.beam": v2["new"],
                    "kernel-8.6/ebin/same.beam": k["same"]})
    plan = build_plan(old, new)
    kinds = {a.name: a.kind for a in plan.apps}
    assert kinds == {"gone": "removed", "kernel": "changed", "a": "changed", "fresh": "added"}
    assert plan.appups["kernel"].up == [Atom("restart_new_emulator")]
    assert plan.appups["a"].up == [(Atom("add_module"), Atom("new")),
                                   (Atom("load_module"), Atom("plain"), [Atom("new")])]
    assert [w.kind for w in plan.warnings] == ["restart_new_emulator"]
    restart = build_plan(old, new, restart=True)
    assert restart.appups["a"].up == [] and restart.appups["a"].changes.added == ["new"]


def test_unreadable_beam_and_compact_atoms():
    with pytest.raises(BeamError):
        read_beam(b"FOR1\x00\x00\x00\x04BEAN")
    # OTP 28: a negative atom count means lengths in the compact encoding
    chunk = (-2).to_bytes(4, "big", signed=True) + bytes([3 << 4]) + b"abc" + bytes([0x08 | (1 << 5), 20]) + b"x" * 276
    assert read_atoms(chunk) == ["abc", "x" * 276]
