"""Demo target systems run the way OTP's embedded systems are: under heart, by a start
program that boots the release named in the data file it is given.

    bin/start [DataFile]   (DataFile defaults to releases/start_erl.data, as OTP's bin/start)
        run_erl -daemon ROOT/tmp/pipe/ ROOT/log "exec ROOT/bin/start_erl ROOT ROOT/releases DataFile
                                                 -heart -name NODE ..."
    bin/start_erl          OTP's own erts-VSN/bin/start_erl, copied as the embedded-system guide does

with HEART_COMMAND=ROOT/bin/start in the environment: a crash (or init:reboot()) restarts the
node into the permanent release, and release_handler's restart upgrade sets heart's command
to `ROOT/bin/start ROOT/releases/new_start_erl.data` to boot the new one.

Every OS process of a root (heart, run_erl, the emulator, erl_child_setup, inet_gethost:
all run executables of the root's erts) is found by its executable and killed by pid at
close, heart and run_erl first (heart would start the node again). What a node runs is read
with erl_call (`eval`), never with erldeploy.
"""

from __future__ import annotations

import ast
import os
import re
import secrets
import shutil
import signal
import subprocess
import time
from pathlib import Path

from tests.support.nodes import _cluster, epmd_names
from tests.support.realrel import kill_root, root_pids

BOOT_TIMEOUT = 90.0     # a loaded machine boots slowly

START = """#!/bin/sh
# Usage: start [DataFile]   (release_handler's restart upgrades pass releases/new_start_erl.data)
ROOTDIR={root}
RELDIR=$ROOTDIR/releases
START_ERL_DATA=${{1:-$RELDIR/start_erl.data}}
mkdir -p $ROOTDIR/tmp/pipe $ROOTDIR/log
cd $ROOTDIR
HEART_COMMAND=$ROOTDIR/bin/start
export HEART_COMMAND
exec $ROOTDIR/erts-{erts}/bin/run_erl -daemon $ROOTDIR/tmp/pipe/ $ROOTDIR/log \\
  "exec $ROOTDIR/bin/start_erl $ROOTDIR $RELDIR $START_ERL_DATA {flags}"
"""


class HeartNode:
    def __init__(self, root: Path, node: str, env: dict[str, str], erts: str, flags: list[str]):
        self.root, self.node, self.env = root, node, env
        self.alive = node.split("@")[0]
        (root / "bin" / "start").write_text(START.format(root=root, erts=erts, flags=" ".join(flags)))
        (root / "bin" / "start").chmod(0o755)
        shutil.copy(root / f"erts-{erts}" / "bin" / "start_erl", root / "bin" / "start_erl")

    def launch(self) -> None:
        # bin/start returns at once (run_erl -daemon), like OTP's
        subprocess.run([str(self.root / "bin" / "start")], cwd=self.root, env=self.env, check=True,
                       stdin=subprocess.DEVNULL, capture_output=True, timeout=60)

    def eval(self, expr: str, timeout: float = 60.0) -> str:
        return _cluster.erl_eval(self.node, expr, env=self.env, timeout=timeout)

    def eval_py(self, expr: str, timeout: float = 60.0):
        return ast.literal_eval(self.eval(expr, timeout))

    def booted(self) -> bool:
        try:
            return self.eval("init:get_status()", timeout=15) == "{started,started}"
        except _cluster.ClusterError:
            return False

    def wait_booted(self, epmd_port: int, timeout: float = BOOT_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while not (self.alive in (epmd_names(epmd_port) or []) and self.booted()):
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.node} not booted within {timeout:g}s: {self.log_tail()}")
            time.sleep(0.25)

    def os_pid(self) -> str:
        return self.eval_py("os:getpid()")

    def releases(self) -> dict[str, str]:
        """which_releases as {vsn: state}."""
        return dict(self.eval_py('[[V, atom_to_list(S)] || {_, V, _, S} <- release_handler:which_releases()]'))

    def script_id(self) -> tuple[str, str]:
        return tuple(self.eval_py("tuple_to_list(init:script_id())"))

    def pids(self) -> list[int]:
        return root_pids(self.root)

    def kill_emulator(self) -> None:
        """SIGKILL the emulator alone: heart then runs HEART_COMMAND (a crash restart)."""
        os.kill(int(self.os_pid()), signal.SIGKILL)

    def kill(self, wait: float = 15.0) -> None:
        kill_root(self.root, self.node, wait)

    def log_tail(self, chars: int = 1500) -> str:
        texts = [p.read_text(errors="replace")[-chars:] for p in sorted((self.root / "log").glob("erlang.log*"))]
        return " | ".join(texts)[-chars:] or "(no log)"


class HeartCluster:
    """n demo target systems (0.0.1) under heart on a private epmd; `extra_beams` are copied
    into each root's lib/demo-0.0.1/ebin (a test's hook module, loaded on first call)."""

    def __init__(self, build, workdir: Path, n: int = 2, *, heart: bool = True,
                 extra_beams: list[Path] = ()):
        self.workdir = Path(workdir).resolve()
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.cookie = secrets.token_hex(16)
        cookie = self.workdir / ".erlang.cookie"
        cookie.write_text(self.cookie)
        cookie.chmod(0o400)
        self.epmd_port = _cluster.free_port()
        self.epmd = _cluster.start_epmd(self.epmd_port, self.workdir / "epmd.log")
        self.env = _cluster.node_env(self.workdir, self.epmd_port)
        self.nodes: list[HeartNode] = []
        prefix = f"h{os.getpid()}{secrets.token_hex(2)}n"
        try:
            for i in range(1, n + 1):
                root = self.workdir / f"{prefix}{i}"
                _cluster.copy_target(build.target, root)
                for beam in extra_beams:
                    shutil.copy(beam, root / "lib" / f"demo-{build.target_vsn}" / "ebin")
                name = f"{prefix}{i}@127.0.0.1"
                flags = ["-name", name, "-noinput", "-kernel", "inet_dist_use_interface", "'{127,0,0,1}'"]
                if heart:
                    flags.insert(0, "-heart")
                self.nodes.append(HeartNode(root, name, self.env, build.erts_vsn, flags))
            for hn in self.nodes:
                hn.launch()
            for hn in self.nodes:
                hn.wait_booted(self.epmd_port)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        for hn in self.nodes:
            hn.kill()
        _cluster.kill_proc(self.epmd)
        _cluster.reap_helpers(self.workdir)


def bumped_core_release(build, workdir: Path, *, app: str = "stdlib", suffix: str = ".0.1",
                        extra_beams: list[Path] = (), vsn: str = "0.0.2") -> tuple[Path, str]:
    """demo VSN as a user's systools build would make it, but with `app` (a core app: kernel,
    stdlib or sasl) under a bumped version: a copy of the target's OTP lib dir with its .app
    vsn raised by `suffix`, so systools:make_relup has to restart the emulator into it
    (restart_new_emulator). No relup: `erldeploy relup` makes it. -> (tarball, bumped vsn)."""
    from tests.support.realrel import _run

    work = Path(workdir).resolve()
    libs = {p.name.split("-")[0]: p for p in (build.target / "lib").iterdir()}
    old_vsn = libs[app].name.split("-", 1)[1]
    new_vsn = old_vsn + suffix
    bumped = work / "lib" / f"{app}-{new_vsn}"
    shutil.copytree(libs[app] / "ebin", bumped / "ebin")
    dot_app = bumped / "ebin" / f"{app}.app"
    before = dot_app.read_text()
    after = re.sub(rf'{{vsn,\s*"{re.escape(old_vsn)}"}}', f'{{vsn,"{new_vsn}"}}', before)
    if after == before:
        raise RuntimeError(f"no {{vsn,\"{old_vsn}\"}} in {dot_app}")
    dot_app.write_text(after)
    demo = work / "lib" / f"demo-{vsn}"
    shutil.copytree(build.root / "lib" / f"demo-{vsn}", demo)
    for beam in extra_beams:
        shutil.copy(beam, demo / "ebin")
    rel_dir = work / "rel"
    rel_dir.mkdir(parents=True)
    vsns = {a: (new_vsn if a == app else p.name.split("-", 1)[1]) for a, p in libs.items() if a != "demo"}
    apps = ", ".join(f'{{{a}, "{vsns[a]}"}}' for a in ("kernel", "stdlib", "sasl"))
    (rel_dir / f"demo-{vsn}.rel").write_text(
        f'{{release, {{"demo", "{vsn}"}}, {{erts, "{build.erts_vsn}"}}, [{apps}, {{demo, "{vsn}"}}]}}.\n')
    (rel_dir / "sys.config").write_text("[].\n")
    path = [str(bumped / "ebin"), str(demo / "ebin")] + \
        [str(p / "ebin") for a, p in libs.items() if a not in (app, "demo")]
    opts = f'[{{path, {_erl_strings(path)}}}, {{outdir, "{rel_dir}"}}]'
    tar_opts = f'[{{path, {_erl_strings(path)}}}, {{outdir, "{work}"}}]'
    rel = str(rel_dir / f"demo-{vsn}")
    _run(["erl", "-noshell", "-eval",
          f'ok = systools:make_script("{rel}", {opts}), ok = systools:make_tar("{rel}", {tar_opts}), halt().'],
         f"building demo {vsn} with {app} {new_vsn}", timeout=120)
    return work / f"demo-{vsn}.tar.gz", new_vsn


def _erl_strings(items: list[str]) -> str:
    return "[" + ", ".join(f'"{s}"' for s in items) + "]"
