#!/usr/bin/env python3
"""`erldeploy relup` on a release of 30+ apps, beside systools:make_relup alone on the same input.

Builds (once per run, in a temp dir) two systools releases of APPS generated apps plus
kernel, stdlib and sasl: each app has an application callback, a supervisor, a gen_server
with code_change and plain modules calling each other; in NEW two thirds of the apps change
(a module edited, one added, one deleted) and the rest keep their version.

  ours     `erldeploy relup OLD.tar.gz NEW.tar.gz -o OUT.tar.gz` (whole CLI process: reads both
           tarballs, diffs every beam, writes the appups, runs systools, writes OUT)
  native   `erl -noshell -eval 'systools:make_relup(...)'` (whole process) on the same input:
           both releases' .rel files and lib dirs with the appups ours generated, laid out
           as systools wants them. The part we cannot make faster.
  strict   the same make_relup given what ours gives it (two ebin dirs, not one per lib):
           in the note, so the part of our lead that is a cheaper call of systools shows
  target   ours <= 1.5x native (median of RUNS each, alternating)

Standalone: ``python scripts/bench_relup.py [--runs N] [--apps N] [--json]``;
importable: ``run(runs) -> list[dict]`` (rows in scripts/bench's format).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))

import demo_releases as dr

ERLDEPLOY = ROOT / ".venv" / "bin" / "erldeploy"
APPS = 32
PLAIN = 5
TARGET = 1.5
RUNS = 5
V1, V2 = "1.0.0", "1.1.0"


def _sources(app: str, changed: bool) -> dict[str, str]:
    """One app's modules; `changed` gives NEW's edits (a plain module, the server, one added,
    one deleted)."""
    srv_state = "{state, 0, new}" if changed else "{state, 0}"
    src = {
        f"{app}_app": f"-module({app}_app).\n-behaviour(application).\n-export([start/2, stop/1]).\n"
                      f"start(_, _) -> {app}_sup:start_link().\nstop(_) -> ok.\n",
        f"{app}_sup": f"-module({app}_sup).\n-behaviour(supervisor).\n-export([start_link/0, init/1]).\n"
                      f"start_link() -> supervisor:start_link({{local, ?MODULE}}, ?MODULE, []).\n"
                      f"init([]) -> {{ok, {{#{{}}, [#{{id => s, start => {{{app}_srv, start_link, []}}}}]}}}}.\n",
        f"{app}_srv": f"-module({app}_srv).\n-behaviour(gen_server).\n"
                      "-export([start_link/0, init/1, handle_call/3, handle_cast/2, code_change/3]).\n"
                      "start_link() -> gen_server:start_link({local, ?MODULE}, ?MODULE, [], []).\n"
                      f"init([]) -> {{ok, {srv_state}}}.\n"
                      f"handle_call(_, _, S) -> {{reply, {app}_m1:f(), S}}.\n"
                      "handle_cast(_, S) -> {noreply, S}.\n"
                      "code_change(_, S, _) -> {ok, S}.\n",
    }
    for i in range(1, PLAIN + 1):
        body = f"{app}_m{i + 1}:f() + 1" if i < PLAIN else ("2" if changed else "1")
        src[f"{app}_m{i}"] = f"-module({app}_m{i}).\n-export([f/0]).\nf() -> {body}.\n"
    src[f"{app}_extra_new" if changed else f"{app}_extra_old"] = \
        f"-module({app}_extra_{'new' if changed else 'old'}).\n-export([g/0]).\ng() -> ok.\n"
    return src


def build_input(dest: Path, apps: int) -> tuple[Path, Path]:
    """Two systools tarballs (no appups, no relup); returns (OLD, NEW)."""
    facts = dr.otp_facts()
    lib_path = [str(dest / "lib" / "*" / "ebin")]
    names = [f"b{i:02d}" for i in range(1, apps + 1)]
    changed = set(names[: (2 * apps) // 3])
    plan: list[object] = []
    steps: list[object] = []
    for rel_vsn in (V1, V2):
        rel_apps = []
        for app in names:
            new_side = rel_vsn == V2 and app in changed
            vsn = V2 if new_side else V1
            rel_apps.append((dr.Atom(app), vsn))
            ebin = dest / "lib" / f"{app}-{vsn}" / "ebin"
            if ebin.exists():
                continue
            ebin.mkdir(parents=True)
            src_dir = dest / "src" / f"{app}-{vsn}"
            src_dir.mkdir(parents=True)
            sources = _sources(app, new_side)
            for mod, text in sources.items():
                (src_dir / f"{mod}.erl").write_text(text)
            plan += [(dr.Atom("compile"), f, ebin, []) for f in sorted(src_dir.glob("*.erl"))]
            dr.write_terms(ebin / f"{app}.app", (dr.Atom("application"), dr.Atom(app), [
                (dr.Atom("description"), f"bench app {app}"), (dr.Atom("vsn"), vsn), (dr.Atom("registered"), []), (dr.Atom("modules"), [dr.Atom(m) for m in sorted(sources)]),
                (dr.Atom("applications"), [dr.Atom("kernel"), dr.Atom("stdlib")]),
                (dr.Atom("mod"), (dr.Atom(f"{app}_app"), []))]))
        otp = [(dr.Atom(a), facts[a]) for a in dr.OTP_APPS]
        reldir = dest / "releases" / rel_vsn
        dr.write_terms(reldir / f"big-{rel_vsn}.rel",
                       (dr.Atom("release"), ("big", rel_vsn), (dr.Atom("erts"), facts["erts"]), otp + rel_apps))
        rel = reldir / f"big-{rel_vsn}"
        steps.append((dr.Atom("make_script"), rel, [(dr.Atom("path"), lib_path), (dr.Atom("outdir"), reldir)]))
        steps.append((dr.Atom("make_tar"), rel, [(dr.Atom("path"), lib_path), (dr.Atom("outdir"), dest / "tars")]))
    (dest / "tars").mkdir()
    plan_file = dest / "plan.config"
    dr.write_terms(plan_file, *plan, *steps)     # every compile first, then the releases
    dr.run(["escript", str(dr.DEMO_DIR / "tools" / "build.escript"), str(plan_file)], "bench releases", cwd=dest)
    return dest / "tars" / f"big-{V1}.tar.gz", dest / "tars" / f"big-{V2}.tar.gz"


def native_input(dest: Path, old: Path, out: Path) -> Path:
    """What systools reads, from OLD and from OUT (NEW plus our appups): .rel files, .app, .appup."""
    for tar in (old, out):
        with tarfile.open(tar) as t:
            members = [m for m in t.getmembers() if m.name.endswith((".app", ".appup", ".rel"))]
            t.extractall(dest, members=members, filter="data")
    return dest


def two_dir_input(dest: Path, old: Path, out: Path) -> Path:
    """The same files as systools is given by ours (make_relup.py's Inputs): two .rel files,
    NEW's apps in new/ebin, OLD's others in old/ebin. For the strict figure: systools called
    as cheaply as ours calls it."""
    with tarfile.open(out) as t:
        new_names = {m.name for m in t.getmembers()}
    for side, tar in (("old", old), ("new", out)):
        with tarfile.open(tar) as t:
            for m in t.getmembers():
                base = Path(m.name).name
                if m.name.endswith(".rel") and m.name.count("/") == 2:
                    target = dest / side / "big.rel"
                elif m.name.endswith((".app", ".appup")):
                    lib = m.name.split("/")[1]
                    # an app at one version in both: one copy, in new/ebin (what ours does)
                    if side == "old" and any(n.startswith(f"lib/{lib}/") for n in new_names):
                        continue
                    target = dest / side / "ebin" / base
                else:
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(t.extractfile(m).read())
    (dest / "out").mkdir()
    return dest


TWO_DIR_EXPR = ('ok = file:set_cwd("{dir}"), '
                '{{ok, _, _, _}} = systools:make_relup("new/big", ["old/big"], ["old/big"], '
                '[silent, {{path, ["new/ebin", "old/ebin"]}}, {{outdir, "out"}}]), halt().')

NATIVE_EXPR = ('ok = file:set_cwd("{dir}"), '
               '{{ok, _, _, _}} = systools:make_relup("releases/{v2}/big-{v2}", ["releases/{v1}/big-{v1}"], '
               '["releases/{v1}/big-{v1}"], [silent, {{path, ["lib/*/ebin"]}}, {{outdir, "relup-out"}}]), halt().')


def _timed(cmd: list[str]) -> tuple[float, float]:
    """(wall seconds, CPU seconds of the process and its children: erl included)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    p = subprocess.run(cmd, check=False, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=300)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if p.returncode != 0:
        raise RuntimeError(f"{Path(cmd[0]).name} exited {p.returncode}: {(p.stdout + p.stderr)[-600:]}")
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def run(runs: int = RUNS, apps: int = APPS) -> list[dict]:
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(ROOT / "pyrlang_deploy")], check=True,
                   stdout=subprocess.DEVNULL)
    work = Path(tempfile.mkdtemp(prefix="bench-relup-"))
    try:
        old, new = build_input(work / "build", apps)
        out = work / "out" / f"big-{V2}.tar.gz"
        ours_cmd = [str(ERLDEPLOY), "relup", str(old), str(new), "-o", str(out), "-q"]
        _timed(ours_cmd)            # warm the page cache; also makes the appups native uses
        nat_dir = native_input(work / "native", old, out)
        (nat_dir / "relup-out").mkdir()
        native_cmd = [shutil.which("erl") or "erl", "-noshell", "-boot", "start_clean", "-eval",
                      NATIVE_EXPR.format(dir=nat_dir, v1=V1, v2=V2)]
        two_dir = two_dir_input(work / "two", old, out)
        strict_cmd = [native_cmd[0], "-noshell", "-boot", "start_clean", "-eval", TWO_DIR_EXPR.format(dir=two_dir)]
        ours, native, strict, ours_cpu, native_cpu, strict_cpu = [], [], [], [], [], []
        for _ in range(runs):
            for acc, cpu, cmd in ((ours, ours_cpu, ours_cmd), (native, native_cpu, native_cmd),
                                  (strict, strict_cpu, strict_cmd)):
                wall, used = _timed(cmd)
                acc.append(wall)
                cpu.append(used)
        with tarfile.open(out) as t:
            appups = sum(1 for n in t.getnames() if n.endswith(".appup"))
        o, n = statistics.median(ours), statistics.median(native)
        oc, nc = statistics.median(ours_cpu), statistics.median(native_cpu)
        load = os.getloadavg()[0]
        st = statistics.median(strict)
        note = (f"{apps} apps + kernel/stdlib/sasl, {appups} appups generated, OUT "
                f"{out.stat().st_size / 1e3:.0f} kB; wall ours min {min(ours):.2f}s max {max(ours):.2f}s; "
                f"strict: systools given our two ebin dirs {st:.3f}s, ours {o / st:.2f}x that; "
                f"CPU ours {oc:.2f}s vs {nc:.2f}s ({oc / nc:.2f}x); load average {load:.1f} "
                f"on {os.cpu_count()} CPUs")
        return [{"section": "relup", "name": f"erldeploy relup, {apps}-app release", "unit": "s",
                 "ours": o, "native": n, "native_label": "systools:make_relup", "ratio": o / n,
                 "target": TARGET, "cmp": "<=", "note": note}]
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=RUNS)
    ap.add_argument("--apps", type=int, default=APPS)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    rows = run(args.runs, args.apps)
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        for r in rows:
            verdict = "PASS" if r["ratio"] <= r["target"] else "FAIL"
            print(f"{r['name']}: ours {r['ours']:.3f} s, systools:make_relup alone {r['native']:.3f} s, "
                  f"ratio {r['ratio']:.2f}x (target <= {r['target']}x) {verdict}\n  {r['note']}")
    return 0 if all(r["ratio"] <= r["target"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
