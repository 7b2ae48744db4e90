"""Users' real releases for tests: built by the real tools, booted by their own scripts.

Three release tools, two versions each (sources under tests/fixtures/, layouts described in
tests/fixtures/LAYOUTS.md):

    build_relx()        relxapp 1.0.0 -> 1.0.1, `rebar3 tar` (relx), nodes by `bin/relxapp daemon`
    build_mix()         mixapp 0.1.0 -> 0.2.0, `mix release` (:assemble, :tar), `bin/mixapp daemon`
    build_distillery()  relxapp again, repacked in Distillery's layout by this module
                        (Distillery itself cannot be installed here), `bin/relxapp start`

Each returns a Pair: the two plain releases (no appup, no relup: what the relup generator
starts from) and `upgrade_tarball`, NEW's own tarball plus a hand-written appup in the app's
ebin and a relup from systools:make_relup in releases/NEW/relup (Castle-style), in the tool's
own layout. Builds are cached on disk under build/realrel/, keyed by a hash of the fixture
sources, this builder's format and the tools' installations: a warm call is a file read.

Nodes: `Nodes(workdir, epmd_port)` extracts a release tarball into one root dir per node
(like a real host), starts each by the release's own script with our cookie, a unique name
and the private epmd port, and kills every OS process of those roots (the emulator, run_erl,
heart, erl_child_setup, inet_gethost: found by their executable under the root) at exit.
What a node runs is read back with `erl_call` (RelNode.eval, which_releases, ...), never
with erldeploy.
"""

from __future__ import annotations

import ast
import fcntl
import hashlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Self

from tests.support.nodes import _cluster, epmd_names, require, unique_name

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures"
CACHE = REPO / "build" / "realrel"
UPGRADE_ESCRIPT = FIXTURES / "upgrade_tar.escript"
# Bump when the builders below change what they produce (the sources are hashed anyway).
BUILD_FORMAT = 2
BOOT_TIMEOUT = 60.0


class FixtureError(RuntimeError):
    """A fixture could not be built, started or read (the message names the step)."""


# --- what was built -----------------------------------------------------------------------

@dataclass(frozen=True)
class Modules:
    """The fixture app's modules as Erlang atoms (Elixir's carry the Elixir. prefix)."""
    server: str         # gen_server with state(), state_version(), bump(); code_change converts
    plain: str          # value() -> {Mod, "VSN"}: the result changes between versions
    removed: str        # only in OLD
    added: str          # only in NEW


@dataclass(frozen=True)
class Release:
    tool: str           # "relx" | "mix" | "distillery"
    name: str           # release name (relxapp, mixapp)
    vsn: str
    tarball: Path       # as the tool wrote it: no appup, no relup
    release_dir: Path   # the tool's assembled release dir (read only: copy before changing it)

    @property
    def rel_member(self) -> str:
        """The .rel inside a release root or tarball (every tool has this one)."""
        return f"releases/{self.vsn}/{self.name}.rel"


@dataclass(frozen=True)
class Pair:
    tool: str
    name: str
    app: str                # the application that changes (same name as the release here)
    old: Release
    new: Release
    upgrade_tarball: Path   # NEW + hand-written appup + relup (systools), tool's own layout
    appup: Path             # the hand-written appup source
    modules: Modules
    cache_dir: Path

    def release(self, vsn: str) -> Release:
        for rel in (self.old, self.new):
            if rel.vsn == vsn:
                return rel
        raise KeyError(f"{self.name} has no version {vsn} (have {self.old.vsn}, {self.new.vsn})")

    @property
    def appup_member(self) -> str:
        return f"lib/{self.app}-{self.new.vsn}/ebin/{self.app}.appup"

    @property
    def relup_member(self) -> str:
        return f"releases/{self.new.vsn}/relup"


RELX_MODULES = Modules("relxapp_server", "relxapp_plain", "relxapp_old", "relxapp_new")
MIX_MODULES = Modules("'Elixir.Mixapp.Server'", "'Elixir.Mixapp.Plain'", "'Elixir.Mixapp.Old'",
                      "'Elixir.Mixapp.New'")


# --- cache ----------------------------------------------------------------------------------

def _tool_fingerprint(*tools: str) -> str:
    """Identity of the installed tools without running them (path, size, mtime)."""
    from demo_releases import (
        otp_fingerprint,  # scripts/ is on sys.path via tests.support.nodes
    )

    parts = [otp_fingerprint()]
    for tool in tools:
        path = Path(require(tool)).resolve()
        st = path.stat()
        parts.append(f"{tool}:{path}:{st.st_size}:{st.st_mtime_ns}")
    return "\n".join(parts)


def _source_key(kind: str, sources: list[Path], tools: tuple[str, ...]) -> str:
    h = hashlib.sha256(f"{kind}:{BUILD_FORMAT}\n".encode())
    files = sorted(p for src in sources for p in (src.rglob("*") if src.is_dir() else [src]) if p.is_file())
    for p in files:
        h.update(str(p.relative_to(REPO)).encode() + b"\0" + p.read_bytes() + b"\0")
    h.update(_tool_fingerprint(*tools).encode())
    return h.hexdigest()[:16]


def _cached(kind: str, key: str, build_into) -> dict:
    """The stamp of CACHE/KIND-KEY, building it first (once, under a lock: parallel test
    sessions wait for one another) if it is missing."""
    out = CACHE / f"{kind}-{key}"
    CACHE.mkdir(parents=True, exist_ok=True)
    with open(CACHE / f".{kind}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        stamp = _read_stamp(out)
        if stamp is not None:
            return stamp
        tmp = CACHE / f".{kind}-{key}.tmp-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        try:
            started = time.monotonic()
            stamp = build_into(tmp)
            stamp["build_seconds"] = round(time.monotonic() - started, 2)
            (tmp / "stamp.json").write_text(json.dumps(stamp, indent=2) + "\n")
            for old in CACHE.glob(f"{kind}-*"):     # superseded builds of this kind
                shutil.rmtree(old, ignore_errors=True)
            tmp.rename(out)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return _read_stamp(out) or {}


def _read_stamp(out: Path) -> dict | None:
    try:
        stamp = json.loads((out / "stamp.json").read_text())
    except (OSError, ValueError):
        return None
    stamp["dir"] = str(out)
    return stamp


def _pair_from_stamp(stamp: dict, appup: Path, modules: Modules) -> Pair:
    d = Path(stamp["dir"])
    rels = [Release(stamp["tool"], stamp["name"], v, d / stamp["tars"][v], d / stamp["dirs"][v])
            for v in stamp["versions"]]
    return Pair(stamp["tool"], stamp["name"], stamp["app"], rels[0], rels[1], d / stamp["upgrade"],
                appup, modules, d)


# --- building -------------------------------------------------------------------------------

def _run(cmd: list[str], what: str, cwd: Path | None = None, env: dict | None = None,
         timeout: float = 600) -> str:
    proc = subprocess.run(cmd, check=False, cwd=cwd, env=env, capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, timeout=timeout)
    if proc.returncode != 0:
        tail = (proc.stdout + proc.stderr).strip().splitlines()[-8:]
        raise FixtureError(f"{what} failed (exit {proc.returncode}): {' | '.join(tail)}")
    return proc.stdout


def _build_env(home: Path) -> dict[str, str]:
    """A clean environment for rebar3/mix: a private HOME (their caches), no inherited
    Erlang flags or paths that would change what they build."""
    env = {k: v for k, v in os.environ.items() if k not in _cluster.SCRUBBED_ENV and not k.startswith("MIX_")}
    home.mkdir(parents=True, exist_ok=True)
    env.update(HOME=str(home), MIX_HOME=str(home / ".mix"), HEX_OFFLINE="1", REBAR_OFFLINE="1")
    return env


def make_upgrade_tarball(old: Release, new: Release, appups: dict[str, Path], out: Path) -> Path:
    """NEW's tarball plus the given appups (tarball member -> hand-written appup file) and a
    relup made by systools:make_relup from OLD and NEW into releases/NEWVSN/relup; every other
    member as NEW's tool wrote it. Returns `out`."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    work = out.parent / f".work-{out.name}-{os.getpid()}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    try:
        _run([require("escript"), str(UPGRADE_ESCRIPT), str(old.release_dir), old.rel_member,
              str(new.tarball), new.rel_member, str(out), str(work)]
             + [f"{member}={Path(src).resolve()}" for member, src in appups.items()],
             f"upgrade tarball {new.name} {old.vsn}->{new.vsn}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return out


def _relx_build(vsn: str, work: Path) -> tuple[Path, Path]:
    """`rebar3 tar` of tests/fixtures/relxapp/VSN in a copy; (tarball, release dir)."""
    src = work / "src" / vsn
    shutil.copytree(FIXTURES / "relxapp" / vsn, src)
    _run([require("rebar3"), "tar"], f"rebar3 tar relxapp {vsn}", cwd=src, env=_build_env(work / "home" / vsn))
    rel = src / "_build" / "default" / "rel" / "relxapp"
    return rel / f"relxapp-{vsn}.tar.gz", rel


def _mix_build(vsn: str, work: Path) -> tuple[Path, Path]:
    """`MIX_ENV=prod mix release` of tests/fixtures/mixapp/VSN in a copy; (tarball, release dir)."""
    src = work / "src" / vsn
    shutil.copytree(FIXTURES / "mixapp" / vsn, src)
    env = _build_env(work / "home" / vsn) | {"MIX_ENV": "prod"}
    _run([require("mix"), "release", "--overwrite"], f"mix release mixapp {vsn}", cwd=src, env=env)
    build = src / "_build" / "prod"
    return build / f"mixapp-{vsn}.tar.gz", build / "rel" / "mixapp"


def _build_pair(tool: str, name: str, versions: tuple[str, str], builder, appup: Path):
    def build_into(dest: Path) -> dict:
        work = dest / "work"
        with ThreadPoolExecutor(max_workers=2) as pool:   # the two versions are independent
            built = list(pool.map(lambda v: builder(v, work), versions))
        stamp = {"tool": tool, "name": name, "app": name, "versions": list(versions), "tars": {}, "dirs": {}}
        for vsn, (tar, rel) in zip(versions, built):
            (dest / "tars").mkdir(exist_ok=True)
            shutil.copy2(tar, dest / "tars" / tar.name)
            shutil.copytree(rel, dest / "rel" / vsn, symlinks=True, ignore=shutil.ignore_patterns("*.tar.gz"))
            stamp["tars"][vsn] = f"tars/{tar.name}"
            stamp["dirs"][vsn] = f"rel/{vsn}"
        shutil.rmtree(work)
        old, new = (Release(tool, name, v, dest / stamp["tars"][v], dest / stamp["dirs"][v]) for v in versions)
        up = dest / "upgrade" / new.tarball.name
        make_upgrade_tarball(old, new, {f"lib/{name}-{new.vsn}/ebin/{name}.appup": appup}, up)
        stamp["upgrade"] = f"upgrade/{up.name}"
        return stamp
    return build_into


@cache
def build_relx() -> Pair:
    """relxapp 1.0.0 and 1.0.1 by `rebar3 tar`, and the 1.0.0->1.0.1 upgrade tarball."""
    appup = FIXTURES / "relxapp" / "relxapp.appup"
    key = _source_key("relx", [FIXTURES / "relxapp", UPGRADE_ESCRIPT], ("rebar3", "escript"))
    stamp = _cached("relx", key, _build_pair("relx", "relxapp", ("1.0.0", "1.0.1"), _relx_build, appup))
    return _pair_from_stamp(stamp, appup, RELX_MODULES)


@cache
def build_mix() -> Pair:
    """mixapp 0.1.0 and 0.2.0 by `mix release` (dir + tarball), and the upgrade tarball."""
    appup = FIXTURES / "mixapp" / "mixapp.appup"
    key = _source_key("mix", [FIXTURES / "mixapp", UPGRADE_ESCRIPT], ("mix", "elixir", "escript"))
    stamp = _cached("mix", key, _build_pair("mix", "mixapp", ("0.1.0", "0.2.0"), _mix_build, appup))
    return _pair_from_stamp(stamp, appup, MIX_MODULES)


def _distillery_layout(relx: Release, dest: Path) -> Path:
    """A Distillery-2.1-layout release of relxapp VSN under `dest` (its output dir), from the
    relx build: our launcher (tests/fixtures/distillery/), releases/VSN/NAME.{rel,boot,sh},
    a RELEASES made by create_RELEASES("./", ...) as Distillery makes it, and the tarball at
    releases/VSN/NAME.tar.gz. Returns the tarball."""
    name, vsn, src = relx.name, relx.vsn, relx.release_dir
    erts = next(p.name for p in src.glob("erts-*"))
    shutil.copytree(src / erts, dest / erts, symlinks=True)
    shutil.copytree(src / "lib", dest / "lib", symlinks=True)
    rel_dir = dest / "releases" / vsn
    rel_dir.mkdir(parents=True)
    for f in (f"{name}.rel", "start.boot", "start_clean.boot", "no_dot_erlang.boot", "sys.config"):
        shutil.copy2(src / "releases" / vsn / f, rel_dir / f)
    shutil.copy2(src / "releases" / vsn / "start.boot", rel_dir / f"{name}.boot")
    shutil.copy2(src / "releases" / vsn / f"{name}.rel", dest / "releases" / f"{name}.rel")  # as systools:make_tar
    shutil.copy2(FIXTURES / "distillery" / "vm.args", rel_dir / "vm.args")
    (dest / "releases" / "start_erl.data").write_text(f"{erts.removeprefix('erts-')} {vsn}\n")
    (dest / "bin").mkdir()
    for template, target in (("launcher.sh", dest / "bin" / name), ("release.sh", rel_dir / f"{name}.sh")):
        target.write_text((FIXTURES / "distillery" / template).read_text().replace("@REL_NAME@", name))
        target.chmod(0o755)
    for boot in ("start_clean.boot", "no_dot_erlang.boot"):
        shutil.copy2(src / "releases" / vsn / boot, dest / "bin" / boot)
    # Distillery calls create_RELEASES("./", "releases", RelFile, []) for "./lib/..." paths. OTP
    # resolves relative paths against code:root_dir(), so run it on the release's own erts
    # and boot file (root_dir = dest): with the host's `erl` it would overwrite the host's RELEASES.
    bindir = dest / erts / "bin"
    env = {k: v for k, v in os.environ.items() if k not in _cluster.SCRUBBED_ENV}
    env.update(ROOTDIR=str(dest), BINDIR=str(bindir), EMU="beam", PROGNAME="erl")
    expr = (f'"{dest}" = code:root_dir(), ok = release_handler:create_RELEASES("./", "{dest}/releases", '
            f'"{rel_dir}/{name}.rel", []), halt().')
    _run([str(bindir / "erlexec"), "-noshell", "-boot", str(rel_dir / "start_clean"), "-eval", expr],
         f"create_RELEASES for distillery {name} {vsn}", cwd=dest, env=env)
    tar = rel_dir / f"{name}.tar.gz"
    # Files only, no directory entries: like the erl_tar-made tarballs of relx and mix.
    files = sorted(str(p.relative_to(dest)) for p in dest.rglob("*") if p.is_file() or p.is_symlink())
    listing = dest.parent / f".{vsn}.members"
    listing.write_text("\n".join(files) + "\n")
    _run(["tar", "-czf", str(tar), "--no-recursion", "-C", str(dest), "-T", str(listing)],
         f"tar distillery {name} {vsn}")
    listing.unlink()
    return tar


@cache
def build_distillery() -> Pair:
    """relxapp 1.0.0 and 1.0.1 repacked in Distillery 2.1's layout (see LAYOUTS.md), and the
    1.0.0->1.0.1 upgrade tarball (at upgrade/1.0.1/relxapp.tar.gz: Distillery's file name)."""
    relx = build_relx()
    key = _source_key(f"distillery/{relx.cache_dir.name}", [FIXTURES / "distillery", UPGRADE_ESCRIPT], ("erl",))

    def build_into(dest: Path) -> dict:
        versions = (relx.old.vsn, relx.new.vsn)
        stamp = {"tool": "distillery", "name": relx.name, "app": relx.app, "versions": list(versions),
                 "tars": {}, "dirs": {}}
        for rel in (relx.old, relx.new):
            tar = _distillery_layout(rel, dest / "rel" / rel.vsn)
            stamp["tars"][rel.vsn] = str(tar.relative_to(dest))
            stamp["dirs"][rel.vsn] = f"rel/{rel.vsn}"
        old, new = (Release("distillery", relx.name, v, dest / stamp["tars"][v], dest / stamp["dirs"][v])
                    for v in versions)
        up = dest / "upgrade" / new.vsn / new.tarball.name
        make_upgrade_tarball(old, new, {relx.appup_member: relx.appup}, up)
        stamp["upgrade"] = str(up.relative_to(dest))
        return stamp

    stamp = _cached("distillery", key, build_into)
    return _pair_from_stamp(stamp, relx.appup, RELX_MODULES)


# --- nodes ----------------------------------------------------------------------------------

def _short_host() -> str:
    return socket.gethostname().split(".")[0]


@dataclass
class RelNode:
    """One release root on disk and the node its own script starts there."""
    tool: str
    name: str               # release name: bin/NAME
    root: Path
    alive: str              # the part before @
    long: bool
    cookie: str
    epmd_port: int
    home: Path              # HOME for erl_call: holds .erlang.cookie
    modules: Modules
    mode: str = "daemon"    # relx: daemon | foreground; mix: daemon | start; distillery: start | foreground
    launcher: subprocess.Popen | None = field(default=None, repr=False)

    @property
    def host(self) -> str:
        return "127.0.0.1" if self.long else _short_host()

    @property
    def node(self) -> str:
        return f"{self.alive}@{self.host}"

    @property
    def script(self) -> Path:
        return self.root / "bin" / self.name

    @property
    def log_dir(self) -> Path:
        return self.root / "log"

    # -- start / stop ------------------------------------------------------------------

    def env(self) -> dict[str, str]:
        """The environment the release script is started with (also for its other commands)."""
        env = _cluster.node_env(self.home, self.epmd_port)
        env.pop("RELEASE_VSN", None)        # mix's launcher would take it over start_erl.data
        flag = "name" if self.long else "sname"
        if self.tool == "mix":
            env.update(RELEASE_NODE=self.node, RELEASE_COOKIE=self.cookie, RELEASE_DISTRIBUTION=flag,
                       RELEASE_TMP=str(self.root / "tmp"))
            if self.long:   # distribution on loopback only
                env["ELIXIR_ERL_OPTIONS"] = "-kernel inet_dist_use_interface {127,0,0,1}"
        else:   # relx and the Distillery layout: ${VAR}s in vm.args
            env.update(FIXTURE_NAME_FLAG=f"-{flag}", FIXTURE_NODE=self.node, FIXTURE_COOKIE=self.cookie)
            for var in ("REL_VSN", "ERTS_VSN", "RELEASE_MUTABLE_DIR", "PIPE_DIR", "RUNNER_LOG_DIR"):
                env.pop(var, None)      # would override what the launchers choose
            if self.tool == "relx":
                env.update(PIPE_DIR=str(self.root / "tmp" / "pipe") + "/", RUNNER_LOG_DIR=str(self.log_dir),
                           RELX_RPC_TIMEOUT="10")
            if self.long:
                env["ERL_AFLAGS"] = "-kernel inet_dist_use_interface {127,0,0,1}"
        return env

    def start(self, timeout: float = BOOT_TIMEOUT) -> RelNode:
        """Start the node by `bin/NAME MODE` (cwd = root, as a service manager would) and wait
        until it has booted and answers erl_call."""
        self.log_dir.mkdir(parents=True, exist_ok=True)
        with open(self.log_dir / "launcher.log", "ab") as out:
            self.launcher = subprocess.Popen([str(self.script), self.mode], cwd=self.root, env=self.env(),
                                             stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                             start_new_session=True)
        deadline = time.monotonic() + timeout
        detached = (self.tool, self.mode) in DETACHED
        while True:
            if self.launcher.poll() not in (None, 0) or (not detached and self.launcher.poll() is not None):
                self.kill()
                raise FixtureError(f"{self.node}: bin/{self.name} {self.mode} exited with "
                                   f"{self.launcher.returncode}: {self.log_tail()}")
            if self.alive in (epmd_names(self.epmd_port) or []) and self._booted():
                break
            if time.monotonic() > deadline:
                self.kill()
                raise FixtureError(f"{self.node}: not booted within {timeout:g}s: {self.log_tail()}")
            time.sleep(0.1)
        if detached:   # relx's daemon command returns once the node answers its own ping
            try:
                self.launcher.wait(timeout=max(1.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
        return self

    def _booted(self) -> bool:
        try:
            return self.eval("init:get_status()", timeout=10) == "{started,started}"
        except _cluster.ClusterError:
            return False

    def pids(self) -> list[int]:
        """OS pids of every process running an executable of this root (its erts)."""
        return _cluster._pids_with_exe_under(self.root)

    def os_pid(self) -> int:
        """The emulator's OS pid, as the node itself reports it."""
        return int(ast.literal_eval(self.eval("os:getpid()")))

    def kill(self, wait: float = 10.0) -> None:
        """SIGKILL every process of this root: heart and run_erl first (heart would restart
        the emulator, run_erl outlives it), then the emulator and its helpers; and the
        launcher's process group. Returns when none is left."""
        if self.launcher is not None and self.launcher.poll() is None:
            _cluster.kill_proc(self.launcher)
        deadline = time.monotonic() + wait
        while pids := self.pids():
            first = [p for p in pids if _exe_name(p) in ("heart", "run_erl")]
            for pid in first + [p for p in pids if p not in first]:
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
            if time.monotonic() > deadline:
                raise FixtureError(f"{self.node}: processes {pids} of {self.root} survive SIGKILL")
            time.sleep(0.05)
        if self.launcher is not None:
            self.launcher.wait()

    stop = kill

    def stop_by_script(self, timeout: float = 30.0) -> bool:
        """`bin/NAME stop` (the graceful way); True when every process of the root then exited
        by itself within `timeout`. Whatever is left is killed either way."""
        try:
            subprocess.run([str(self.script), "stop"], check=False, cwd=self.root, env=self.env(),
                           stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            pass
        deadline = time.monotonic() + timeout
        while self.pids() and time.monotonic() < deadline:
            time.sleep(0.1)
        graceful = not self.pids()
        self.kill()
        return graceful

    def restart(self, timeout: float = BOOT_TIMEOUT, *, graceful: bool = False) -> RelNode:
        """Stop the node (SIGKILL, or `bin/NAME stop` when graceful) and start it again by its
        own script: what it boots is the script's choice (LAYOUTS.md: relx its hard-coded
        version, mix releases/start_erl.data, Distillery var/start_erl.data)."""
        if graceful:
            self.stop_by_script()
        else:
            self.kill()
        return self.start(timeout)

    def log_tail(self, chars: int = 1500) -> str:
        texts = []
        for p in sorted(self.log_dir.glob("*")) + sorted(self.root.glob("[tv]*/log/*")):
            if p.is_file():
                texts.append(f"[{p.name}] " + p.read_text(errors="replace")[-chars:])
        return " | ".join(texts)[-chars * 2:] or "(no log)"

    # -- reading the node back (erl_call, never erldeploy) ----------------------------

    def eval(self, expr: str, timeout: float = 30.0) -> str:
        """Evaluate Erlang expressions on the node via erl_call; the value as ~0tp text."""
        return _cluster.erl_eval(self.node, expr, env=_cluster.node_env(self.home, self.epmd_port),
                                 names="long" if self.long else "short", timeout=timeout)

    def eval_py(self, expr: str, timeout: float = 30.0):
        """eval() of an expression whose value is built of strings, integers and lists
        (no tuples, atoms, binaries), as the Python value."""
        return ast.literal_eval(self.eval(expr, timeout))

    def which_releases(self) -> list[tuple[str, str]]:
        """[(vsn, status)] from release_handler:which_releases(), newest first."""
        return [tuple(x) for x in self.eval_py(
            "[[V, atom_to_list(S)] || {_, V, _, S} <- release_handler:which_releases()]")]

    def current_vsn(self) -> str:
        """The release the node runs now (current, else permanent)."""
        states = {s: v for v, s in self.which_releases()}
        return states.get("current") or states["permanent"]

    def script_id(self) -> tuple[str, str]:
        """init:script_id(): (name, vsn) of the boot script the node was started with."""
        return tuple(self.eval_py("tuple_to_list(init:script_id())"))

    def server_state(self) -> str:
        """The gen_server's raw state as Erlang text ({count,N} in OLD; a map in NEW)."""
        return self.eval(f"{self.modules.server}:state()")

    def state_version(self) -> int:
        """1 before the upgrade, 2 after it (the state shape the running server holds)."""
        return int(self.eval(f"{self.modules.server}:state_version()"))

    def bump(self) -> int:
        """Increment the server's counter; the new count (state that must survive upgrades)."""
        return int(self.eval(f"{self.modules.server}:bump()"))

    def plain_value(self) -> str:
        """The plain module's result: the version string compiled into it."""
        return self.eval_py(f"case element(2, {self.modules.plain}:value()) of "
                            "B when is_binary(B) -> binary_to_list(B); L -> L end")

    def module_loaded(self, module: str) -> bool:
        """Is the module loaded now? (embedded mode: a module of the release is loaded iff it
        is part of the running release)."""
        return self.eval(f"code:is_loaded({module}) =/= false") == "true"

    def app_vsn(self, app: str) -> str | None:
        """The version of a running application, None when it does not run."""
        text = self.eval(f"case lists:keyfind({app}, 1, application:which_applications()) of "
                         "{_, _, V} -> V; false -> none end")
        return None if text == "none" else ast.literal_eval(text)

    def root_dir(self) -> str:
        return self.eval_py("code:root_dir()")


def _exe_name(pid: int) -> str:
    try:
        return os.path.basename(os.readlink(f"/proc/{pid}/exe"))
    except OSError:
        return ""


class Nodes:
    """Release nodes of one test: a root dir per node under `workdir`, all on one epmd.

        with Nodes(tmp_path, epmd.port) as nodes:
            a, b = nodes.start(build_relx(), "1.0.0", n=2)

    Every node started here is killed (all the processes of its root) at exit.
    """

    def __init__(self, workdir: Path, epmd_port: int, cookie: str | None = None) -> None:
        self.workdir = Path(workdir).resolve()
        self.epmd_port = epmd_port
        self.cookie = cookie or "c" + secrets.token_hex(12)
        self.home = self.workdir / "home"
        self.home.mkdir(parents=True, exist_ok=True)
        cookie_file = self.home / ".erlang.cookie"
        cookie_file.write_text(self.cookie)
        cookie_file.chmod(0o400)
        self.nodes: list[RelNode] = []

    def root_for(self, pair: Pair, vsn: str, alive: str, tarball: Path | None = None) -> Path:
        """Extract the release tarball (default: VSN's plain one) into a fresh root dir."""
        root = self.workdir / alive
        root.mkdir(parents=True)
        tar = tarball or pair.release(vsn).tarball
        _run(["tar", "-xzf", str(tar), "-C", str(root)], f"extract {tar.name} into {root}")
        return root

    def make(self, pair: Pair, vsn: str, *, long: bool = True, mode: str | None = None,
             alive: str | None = None, tarball: Path | None = None) -> RelNode:
        """A node's root, ready to start (not started)."""
        alive = alive or unique_name(pair.tool[:3])
        root = self.root_for(pair, vsn, alive, tarball)
        node = RelNode(pair.tool, pair.name, root, alive, long, self.cookie, self.epmd_port, self.home,
                       pair.modules, mode or DEFAULT_MODE[pair.tool])
        self.nodes.append(node)
        return node

    def start(self, pair: Pair, vsn: str, n: int = 2, *, long: bool = True, mode: str | None = None,
              join: bool = True) -> list[RelNode]:
        """n nodes of VSN, each in its own root, started concurrently by the release's own
        script; joined into one cluster (net_adm:ping) unless join=False."""
        made = [self.make(pair, vsn, long=long, mode=mode) for _ in range(n)]
        with ThreadPoolExecutor(max_workers=n) as pool:
            list(pool.map(RelNode.start, made))
        if join and n > 1:
            connect(made)
        return made

    def close(self) -> None:
        errors = []
        for node in self.nodes:
            try:
                node.kill()
            except FixtureError as e:
                errors.append(str(e))
        _cluster.reap_helpers(self.workdir)
        if errors:
            raise FixtureError("; ".join(errors))

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


DEFAULT_MODE = {"relx": "daemon", "mix": "daemon", "distillery": "start"}
# Commands whose launcher returns while the node runs on under run_erl.
DETACHED = {("relx", "daemon"), ("mix", "daemon"), ("distillery", "start")}


def connect(nodes: list[RelNode]) -> None:
    """Connect every node to every other (visible connections) and check nodes() on each."""
    names = [n.node for n in nodes]
    for node in nodes:
        peers = ", ".join(f"'{p}'" for p in names if p != node.node)
        missing = node.eval(f"Peers = [{peers}], [P || P <- Peers, net_adm:ping(P) =/= pong]")
        if missing != "[]":
            raise FixtureError(f"{node.node} cannot reach {missing}")
