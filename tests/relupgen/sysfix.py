"""The systools fixture for relup generation: demo 0.0.1 and 0.0.2 with no appup and no relup.

The demo's own sources (demo/src, compiled per version as scripts/demo_releases.py does),
plus three plain modules that give every kind of change an upgrade can have:
  demo_util   in both, changed: 0.0.2's tag/0 calls demo_new (a dependency on a new module)
  demo_old    only in 0.0.1: deleted by the upgrade, back after the rollback
  demo_new    only in 0.0.2: added by the upgrade, gone after the rollback
demo_server changes its state shape (tuple -> map) with a code_change that converts both ways.

Built with systools by the demo's own build escript (one emulator), into a fresh dir:
    tars/demo-<vsn>.tar.gz   what `systools:make_tar` writes: no appup, no relup inside
    target/                  a target system of 0.0.1 with erts, for demo_cluster.start_cluster
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "scripts"))

import demo_releases as dr  # noqa: E402 (from scripts/, put on the path above)

APP = "demo"
VERSIONS = {"0.0.1": 1, "0.0.2": 2}          # vsn -> demo_server's SHAPE
EXTRA = {
    "0.0.1": {
        "demo_util": '-module(demo_util).\n-export([tag/0]).\ntag() -> "v1".\n',
        "demo_old": "-module(demo_old).\n-export([gone/0]).\ngone() -> still_here.\n",
    },
    "0.0.2": {
        "demo_util": '-module(demo_util).\n-export([tag/0]).\ntag() -> {"v2", demo_new:hello()}.\n',
        "demo_new": "-module(demo_new).\n-export([hello/0]).\nhello() -> hello.\n",
    },
}


def modules(vsn: str) -> list[str]:
    return list(dr.MODULES) + sorted(EXTRA[vsn])


def build(dest: Path) -> dr.DemoBuild:
    dest = Path(dest)
    facts = dr.otp_facts()
    erts = facts["erts"]
    lib_path = [str(dest / "lib" / "*" / "ebin")]
    plan: list[object] = []
    for vsn, shape in VERSIONS.items():
        ebin = dest / "lib" / f"{APP}-{vsn}" / "ebin"
        ebin.mkdir(parents=True)
        src = dest / "src" / vsn
        src.mkdir(parents=True)
        defines = [(dr.Atom("SHAPE"), shape), (dr.Atom("VSN"), vsn)]
        for mod in dr.MODULES:
            plan.append((dr.Atom("compile"), dr.DEMO_DIR / "src" / f"{mod}.erl", ebin, defines))
        for mod, text in EXTRA[vsn].items():
            (src / f"{mod}.erl").write_text(text)
            plan.append((dr.Atom("compile"), src / f"{mod}.erl", ebin, defines))
        app = dr.app_term(vsn)
        props = [(k, [dr.Atom(m) for m in modules(vsn)]) if k == "modules" else (k, v) for k, v in app[2]]
        dr.write_terms(ebin / f"{APP}.app", (app[0], app[1], props))
        reldir = dest / "releases" / vsn
        dr.write_terms(reldir / f"{APP}-{vsn}.rel", dr.rel_term(vsn, erts, facts))
        dr.write_terms(reldir / "sys.config", [])
        rel = reldir / f"{APP}-{vsn}"
        plan.append((dr.Atom("make_script"), rel, [(dr.Atom("path"), lib_path), (dr.Atom("outdir"), reldir)]))
        plan.append((dr.Atom("make_tar"), rel, [(dr.Atom("path"), lib_path), (dr.Atom("outdir"), dest / "tars")]))
    target, work = dest / "target", dest / "work"
    for d in (dest / "tars", target, work):
        d.mkdir(parents=True, exist_ok=True)
    first = next(iter(VERSIONS))
    rel = dest / "releases" / first / f"{APP}-{first}"
    plan.append((dr.Atom("make_tar"), rel, [(dr.Atom("path"), lib_path), (dr.Atom("outdir"), work),
                                             (dr.Atom("erts"), str(dr.erl_root()))]))
    plan.append((dr.Atom("extract"), work / f"{APP}-{first}.tar.gz", target))
    plan.append((dr.Atom("create_releases"), ".", target / "releases",
                 target / "releases" / first / f"{APP}-{first}.rel"))
    plan_file = dest / "plan.config"
    dr.write_terms(plan_file, *plan)
    dr.run(["escript", str(dr.DEMO_DIR / "tools" / "build.escript"), str(plan_file)], "relup fixture", cwd=dest)
    (target / "releases" / "start_erl.data").write_text(f"{erts} {first}\n")
    dr.write_start_script(target / "bin" / "start")
    return dr.DemoBuild(root=dest, versions=list(VERSIONS),
                        tars={v: dest / "tars" / f"{APP}-{v}.tar.gz" for v in VERSIONS},
                        target=target, otp_release=facts["otp_release"], erts_vsn=erts)
