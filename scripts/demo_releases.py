#!/usr/bin/env python3
"""Build the demo releases: demo 0.0.1-0.0.3, a broken 0.0.4, and a target system.

Real releases built with `erlc`-equivalent `compile:file` and `systools` (no rebar,
no relx), driven by one Erlang build plan (demo/tools/build.escript) so the
emulator starts once. Standard library only: this runs before any venv exists.

    python3 scripts/demo_releases.py build [--out DIR] [--force]

Layout of DIR (default build/demo):
    lib/demo-<vsn>/ebin/             beams, demo.app, demo.appup
    releases/<vsn>/                  demo-<vsn>.rel/.boot/.script, sys.config, relup
    tars/demo-<vsn>.tar.gz           upgrade packages: copy to <node root>/releases/ and
                                     release_handler:unpack_release("demo-<vsn>")
    target/                          a target system of 0.0.1 with erts: copy it per node
    stamp.json                       cache key and the facts below

Cached: the stamp holds a hash of demo/, this script and the OTP installation, so a
second build() is a file read.
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DEMO_DIR = REPO / "demo"
DEFAULT_OUT = REPO / "build" / "demo"

APP = "demo"
MODULES = ("demo", "demo_sup", "demo_server")
OTP_APPS = ("kernel", "stdlib", "sasl")
# Compile-time defines per version; demo_server.erl explains the shapes.
VERSIONS: dict[str, dict[str, object]] = {
    "0.0.1": {"SHAPE": 1},
    "0.0.2": {"SHAPE": 2},
    "0.0.3": {"SHAPE": 3},
    "0.0.4": {"SHAPE": 3, "BROKEN": True},
}
BROKEN = "0.0.4"
TARGET_VSN = "0.0.1"
# Every upgrade (and downgrade) is the same instruction: suspend demo_server,
# load the other version, call code_change.
INSTRUCTIONS = [("update", "demo_server", ("advanced", []))]


class BuildError(RuntimeError):
    """The demo could not be built (message says which step and why)."""


@dataclass(frozen=True)
class DemoBuild:
    root: Path                  # the build directory
    versions: list[str]         # every version, oldest first, the broken one last
    tars: dict[str, Path]       # vsn -> tars/demo-<vsn>.tar.gz
    target: Path                # target-system template (0.0.1, erts included)
    otp_release: str            # "25"
    erts_vsn: str               # "13.1.5"
    broken: str = BROKEN        # the version whose code_change crashes
    target_vsn: str = TARGET_VSN

    def release_dir(self, vsn: str) -> Path:
        """releases/<vsn>/ of the build: the .rel, boot files and relup."""
        return self.root / "releases" / vsn

    def rel_name(self, vsn: str) -> str:
        """The name release_handler:unpack_release/1 takes once the tar is in releases/."""
        return f"{APP}-{vsn}"


# --- Erlang terms as text (for .app, .appup, .rel and the build plan) -------

class Atom(str):
    pass


PLAIN_ATOM = re.compile(r"[a-z][A-Za-z0-9_@]*\Z")
RESERVED = {"after", "and", "andalso", "band", "begin", "bnot", "bor", "bsl", "bsr", "bxor",
            "case", "catch", "cond", "div", "end", "fun", "if", "let", "maybe", "not", "of",
            "or", "orelse", "receive", "rem", "try", "when", "xor"}


def term(x: object) -> str:
    if isinstance(x, Atom):
        if PLAIN_ATOM.match(x) and x not in RESERVED:
            return str(x)
        return "'" + x.replace("\\", "\\\\").replace("'", "\\'") + "'"
    if isinstance(x, bool):
        return "true" if x else "false"
    if isinstance(x, int):
        return str(x)
    if isinstance(x, (str, Path)):
        return '"' + str(x).replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(x, tuple):
        return "{" + ", ".join(term(e) for e in x) + "}"
    if isinstance(x, list):
        return "[" + ", ".join(term(e) for e in x) + "]"
    raise TypeError(f"no Erlang term for {x!r}")


def atoms(x: object) -> object:
    """Instruction tuples are written with plain strings for atoms; convert them."""
    if isinstance(x, tuple):
        return tuple(atoms(e) for e in x)
    if isinstance(x, list):
        return [atoms(e) for e in x]
    return Atom(x) if isinstance(x, str) else x


def write_terms(path: Path, *terms: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(term(t) + ".\n" for t in terms), encoding="utf-8")


# --- the OTP installation ----------------------------------------------------

def erl_root() -> Path:
    erl = shutil.which("erl")
    if erl is None:
        raise BuildError("erl not found on PATH: install Erlang/OTP (erlang-nox)")
    return Path(erl).resolve().parent.parent


def otp_fingerprint() -> str:
    """Cheap identity of the OTP installation (no emulator start)."""
    root = erl_root()
    parts = [str(root)]
    parts += sorted(p.name for p in root.glob("erts-*"))
    parts += sorted(f"{p}:{p.read_text().strip()}" for p in root.glob("releases/*/OTP_VERSION"))
    parts += sorted(p.name for p in (root / "lib").glob("*-*") if p.name.split("-")[0] in OTP_APPS)
    return "\n".join(parts)


def otp_facts() -> dict[str, str]:
    """OTP release, erts and the versions of the OTP apps the release uses."""
    expr = ('io:format("otp_release ~s~nerts ~s~n", [erlang:system_info(otp_release), '
            'erlang:system_info(version)]), '
            '[begin application:load(A), {ok, V} = application:get_key(A, vsn), '
            'io:format("~s ~s~n", [A, V]) end || A <- [' + ",".join(OTP_APPS) + ']], '
            'halt().')
    out = run(["erl", "-noshell", "-boot", "start_clean", "-eval", expr], "query OTP versions")
    return dict(line.split(" ", 1) for line in out.splitlines() if " " in line)


def run(cmd: list[str], what: str, cwd: Path | None = None) -> str:
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
        raise BuildError(f"{what} failed (exit {proc.returncode}): {' | '.join(tail)}")
    return proc.stdout


# --- cache -------------------------------------------------------------------

def source_hash() -> str:
    h = hashlib.sha256()
    files = sorted(p for p in DEMO_DIR.rglob("*") if p.is_file())
    for p in files + [Path(__file__).resolve()]:
        h.update(str(p.relative_to(REPO)).encode() + b"\0" + p.read_bytes() + b"\0")
    h.update(otp_fingerprint().encode())
    return h.hexdigest()


def from_stamp(out: Path, key: str) -> DemoBuild | None:
    try:
        stamp = json.loads((out / "stamp.json").read_text())
    except (OSError, ValueError):
        return None
    if stamp.get("key") != key:
        return None
    result = DemoBuild(
        root=out,
        versions=list(stamp["versions"]),
        tars={v: out / p for v, p in stamp["tars"].items()},
        target=out / stamp["target"],
        otp_release=stamp["otp_release"],
        erts_vsn=stamp["erts_vsn"],
    )
    if not all(p.is_file() for p in result.tars.values()) or not (result.target / "bin" / "start").is_file():
        return None
    return result


# --- the build ---------------------------------------------------------------

def build(out: Path | None = None, *, force: bool = False) -> DemoBuild:
    """Build (or reuse) every demo release under `out` (default build/demo)."""
    out = Path(out or DEFAULT_OUT).resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    key = source_hash()
    # Test sessions build in parallel; one builds, the others wait and reuse it.
    with open(out.parent / f".{out.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not force and (cached := from_stamp(out, key)) is not None:
            return cached
        tmp = out.parent / f".{out.name}.tmp-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        try:
            stamp = build_into(tmp, key)
            shutil.rmtree(out, ignore_errors=True)
            tmp.rename(out)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        result = from_stamp(out, key)
        assert result is not None, stamp
        return result


def build_into(dest: Path, key: str) -> dict[str, object]:
    started = time.monotonic()
    facts = otp_facts()
    erts = facts["erts"]
    versions = list(VERSIONS)
    lib_path = [str(dest / "lib" / "*" / "ebin")]
    plan: list[object] = []

    for i, vsn in enumerate(versions):
        ebin = dest / "lib" / f"{APP}-{vsn}" / "ebin"
        ebin.mkdir(parents=True)
        defines = [(Atom(k), v) if v is not True else Atom(k) for k, v in VERSIONS[vsn].items()]
        defines.append((Atom("VSN"), vsn))
        for mod in MODULES:
            plan.append((Atom("compile"), DEMO_DIR / "src" / f"{mod}.erl", ebin, defines))
        write_terms(ebin / f"{APP}.app", app_term(vsn))
        earlier = versions[:i]
        appup = [(e, atoms(INSTRUCTIONS)) for e in earlier]
        write_terms(ebin / f"{APP}.appup", (vsn, appup, appup))

        reldir = dest / "releases" / vsn
        rel = reldir / f"{APP}-{vsn}"
        write_terms(reldir / f"{APP}-{vsn}.rel", rel_term(vsn, erts, facts))
        write_terms(reldir / "sys.config", [])
        opts = [(Atom("path"), lib_path), (Atom("outdir"), reldir)]
        plan.append((Atom("make_script"), rel, opts))
        if earlier:
            others = [dest / "releases" / e / f"{APP}-{e}" for e in earlier]
            plan.append((Atom("make_relup"), rel, others, others, opts))
        plan.append((Atom("make_tar"), rel, [(Atom("path"), lib_path), (Atom("outdir"), dest / "tars")]))

    # Target system: the 0.0.1 package with erts, unpacked into target/.
    target = dest / "target"
    work = dest / "work"
    for d in (dest / "tars", target, work):
        d.mkdir(parents=True, exist_ok=True)
    rel = dest / "releases" / TARGET_VSN / f"{APP}-{TARGET_VSN}"
    plan.append((Atom("make_tar"), rel, [(Atom("path"), lib_path), (Atom("outdir"), work),
                                          (Atom("erts"), str(erl_root()))]))
    plan.append((Atom("extract"), work / f"{APP}-{TARGET_VSN}.tar.gz", target))
    # Root "." gives relx-style relative lib paths ("./lib/..."): a node must run
    # with its cwd at its root, as relx/Distillery releases do.
    plan.append((Atom("create_releases"), ".", target / "releases",
                 target / "releases" / TARGET_VSN / f"{APP}-{TARGET_VSN}.rel"))

    plan_file = dest / "plan.config"
    write_terms(plan_file, *plan)
    run(["escript", str(DEMO_DIR / "tools" / "build.escript"), str(plan_file)], "build plan", cwd=dest)
    shutil.rmtree(work)

    (target / "releases" / "start_erl.data").write_text(f"{erts} {TARGET_VSN}\n")
    write_start_script(target / "bin" / "start")

    stamp = {
        "key": key,
        "versions": versions,
        "tars": {v: f"tars/{APP}-{v}.tar.gz" for v in versions},
        "target": "target",
        "otp_release": facts["otp_release"],
        "erts_vsn": erts,
        "seconds": round(time.monotonic() - started, 2),
    }
    (dest / "stamp.json").write_text(json.dumps(stamp, indent=2) + "\n")
    return stamp


def app_term(vsn: str) -> object:
    return (Atom("application"), Atom(APP), [
        (Atom("description"), "erldeploy demo: a counter that survives hot upgrades"),
        (Atom("vsn"), vsn),
        (Atom("modules"), [Atom(m) for m in MODULES]),
        (Atom("registered"), [Atom("demo_sup"), Atom("demo_server")]),
        (Atom("applications"), [Atom("kernel"), Atom("stdlib")]),
        (Atom("mod"), (Atom("demo"), [])),
    ])


def rel_term(vsn: str, erts: str, facts: dict[str, str]) -> object:
    apps = [(Atom(a), facts[a]) for a in OTP_APPS] + [(Atom(APP), vsn)]
    return (Atom("release"), (APP, vsn), (Atom("erts"), erts), apps)


START_SCRIPT = """#!/bin/sh
# Boot this target system into the release named in releases/start_erl.data
# (the permanent one: release_handler:make_permanent rewrites that file).
# Extra arguments go to the emulator, e.g.: bin/start -name a@127.0.0.1 -noinput
ROOTDIR=$(cd "$(dirname "$0")/.." && pwd -P)
read -r ERTS_VSN REL_VSN < "$ROOTDIR/releases/start_erl.data"
BINDIR="$ROOTDIR/erts-$ERTS_VSN/bin"
EMU=beam
PROGNAME=erl
export ROOTDIR BINDIR EMU PROGNAME
# Release libs may be listed relative to the root (./lib/...): run from there.
cd "$ROOTDIR" || exit 1
exec "$BINDIR/erlexec" -boot "$ROOTDIR/releases/$REL_VSN/start" \\
    -config "$ROOTDIR/releases/$REL_VSN/sys" "$@"
"""


def write_start_script(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(START_SCRIPT)
    path.chmod(0o755)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build", help="build (or reuse) the demo releases")
    b.add_argument("--out", type=Path, default=None, help=f"output dir (default {DEFAULT_OUT})")
    b.add_argument("--force", action="store_true", help="rebuild even if the cache is fresh")
    args = parser.parse_args(argv)
    started = time.monotonic()
    try:
        result = build(args.out, force=args.force)
    except BuildError as e:
        print(f"demo_releases: {e}", file=sys.stderr)
        return 1
    print(f"built in {time.monotonic() - started:.2f}s: {result.root}")
    print(f"  OTP {result.otp_release}, erts {result.erts_vsn}; broken release: {result.broken}")
    for vsn, tar in result.tars.items():
        print(f"  {vsn}: {tar}")
    print(f"  target system ({result.target_vsn}): {result.target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
