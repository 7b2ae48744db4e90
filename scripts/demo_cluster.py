#!/usr/bin/env python3
"""A local demo cluster: N target-system nodes of demo 0.0.1 on a private epmd.

    python3 scripts/demo_cluster.py start  [--nodes 3] [--dir DIR] [--cookie C]
                                           [--epmd-port P] [--names long|short] [--prefix demo]
    python3 scripts/demo_cluster.py status [--dir DIR]
    python3 scripts/demo_cluster.py stop   [--dir DIR]

Each node gets its own copy of the target system (release_handler writes into its
root's releases/ dir), is booted by that root's bin/start (its own erts, the boot
file of the permanent release, sasl running, cwd = root, code:root_dir() = root),
runs detached with its output in <root>/log/node.log, and reads its cookie from
DIR/.erlang.cookie (HOME=DIR) so the cookie never appears in `ps`. Nodes connect
to each other while booting (-kernel sync_nodes_optional), so a node that
release_handler restarts in place rejoins the cluster. The state (names, pids,
epmd port, cookie path) is in DIR/cluster.json; `stop` kills exactly those pids
and the epmd it started.

Python API (what tests use): start_cluster(build, workdir, n, cookie, epmd_port,
names, name_prefix) -> Cluster, with Cluster.eval(node, expr) -> value as Erlang
text (through `erl_call`, a C hidden node), wait_started(node), kill_node(node),
stop(). Standard library only.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from demo_releases import REPO, DemoBuild, build  # noqa: E402

DEFAULT_DIR = REPO / "build" / "cluster"
STATE_FILE = "cluster.json"
BOOT_TIMEOUT = 30.0
SYNC_NODES_TIMEOUT_MS = 3000
# Inherited settings that would change what the nodes load or where they register.
SCRUBBED_ENV = ("ERL_LIBS", "ERL_FLAGS", "ERL_AFLAGS", "ERL_ZFLAGS", "ROOTDIR", "BINDIR",
                "EMU", "PROGNAME", "ERL_EPMD_ADDRESS")


class ClusterError(RuntimeError):
    """The demo cluster could not be started, reached or evaluated on."""


def reap_helpers(workdir: Path, wait: float = 5.0) -> None:
    """The emulators' helper programs (inet_gethost runs in its own process group and
    exits only when it notices its port closed) live in our node roots: wait for them,
    and kill any that linger, so stop() leaves nothing behind."""
    deadline = time.monotonic() + wait
    while True:
        left = _pids_with_exe_under(workdir)
        if not left:
            return
        if time.monotonic() > deadline:
            for pid in left:
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
            return
        time.sleep(0.02)


def _pids_with_exe_under(path: Path) -> list[int]:
    found = []
    prefix = str(path.resolve())
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.readlink(f"/proc/{entry}/exe").startswith(prefix):
                    found.append(int(entry))
            except OSError:
                pass
    return found


@dataclass
class Cluster:
    nodes: list[str]            # full node names, "demo1@127.0.0.1", ...
    pids: list[int]             # OS pid of each node's emulator (same order)
    roots: list[Path]           # each node's target-system root (same order)
    epmd_port: int
    epmd_pid: int | None        # None when the epmd was not started by us
    cookie: str
    workdir: Path
    names: str = "long"
    epmd_host: str = "127.0.0.1"    # where the epmd answers (a bench's network namespace: its address)
    _procs: list[subprocess.Popen] = field(default_factory=list, repr=False, compare=False)

    @property
    def cookie_path(self) -> Path:
        return self.workdir / ".erlang.cookie"

    @property
    def state_file(self) -> Path:
        return self.workdir / STATE_FILE

    def env(self) -> dict[str, str]:
        """Environment for erl/erl_call/escript to reach the cluster (epmd port, cookie file)."""
        return node_env(self.workdir, self.epmd_port)

    def root_of(self, node: str) -> Path:
        return self.roots[self.nodes.index(node)]

    def eval(self, node: str, expr: str, timeout: float = 60.0) -> str:
        """Evaluate Erlang expressions on `node`; return the value printed by ~0tp.

        Raises ClusterError when the node cannot be reached or the expression raises.
        """
        return erl_eval(node, expr, env=self.env(), names=self.names, timeout=timeout)

    def wait_started(self, node: str, timeout: float = 20.0) -> float:
        """Wait until `node` answers and has finished booting (e.g. after release_handler
        restarted it in place); returns the seconds waited."""
        started = time.monotonic()
        while True:
            try:
                if self.eval(node, "init:get_status()", timeout=5) == "{started,started}":
                    return time.monotonic() - started
            except ClusterError:
                pass        # unregistered for a moment while restarting
            if time.monotonic() - started > timeout:
                raise ClusterError(f"{node}: not started within {timeout:g}s")
            time.sleep(0.05)

    def kill_node(self, node: str) -> None:
        """SIGKILL one node (a node that is down, for failure tests); stop() still works."""
        pid = self.pids[self.nodes.index(node)]
        for proc in self._procs:
            if proc.pid == pid:
                kill_proc(proc)
                return
        kill_pid(pid, must_contain=f" {node} ")

    def stop(self) -> None:
        """Kill every node and the epmd we started (by pid). Idempotent."""
        for proc in self._procs:
            kill_proc(proc)
        live = {p.pid for p in self._procs}
        for node, pid in zip(self.nodes, self.pids):
            if pid not in live:
                kill_pid(pid, must_contain=f" {node} ")
        if self.epmd_pid is not None and self.epmd_pid not in live:
            kill_pid(self.epmd_pid, must_contain=f"epmd -port {self.epmd_port} ")
        self._procs.clear()
        reap_helpers(self.workdir)


    def save(self) -> None:
        # The cookie itself stays in its 0400 file.
        state = {"nodes": self.nodes, "pids": self.pids, "roots": [str(r) for r in self.roots],
                 "epmd_port": self.epmd_port, "epmd_pid": self.epmd_pid, "names": self.names,
                 "workdir": str(self.workdir), "cookie_path": str(self.cookie_path)}
        self.state_file.write_text(json.dumps(state, indent=2) + "\n")

    @classmethod
    def load(cls, workdir: Path) -> Cluster:
        state = json.loads((workdir / STATE_FILE).read_text())
        cookie = Path(state["cookie_path"]).read_text().strip()
        return cls(nodes=state["nodes"], pids=state["pids"], roots=[Path(r) for r in state["roots"]],
                   epmd_port=state["epmd_port"], epmd_pid=state["epmd_pid"], cookie=cookie,
                   workdir=Path(state["workdir"]), names=state["names"])


# --- processes -----------------------------------------------------------------

def kill_proc(proc: subprocess.Popen) -> None:
    """Kill a child we started, and reap it. SIGKILL: these nodes keep nothing worth
    a graceful init:stop (which takes a second per node)."""
    _signal_group(proc.pid, signal.SIGKILL)
    proc.wait()


def kill_pid(pid: int, must_contain: str, wait: float = 5.0) -> None:
    """Kill a pid recorded by another process, only if it still is what we started."""
    if must_contain not in _cmdline(pid):
        return
    _signal_group(pid, signal.SIGKILL)
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline and must_contain in _cmdline(pid):
        time.sleep(0.02)


def _signal_group(pid: int, sig: signal.Signals) -> None:
    # Each child is its own session leader (start_new_session), so its pid is its
    # pgid and the group holds the emulator's erl_child_setup too. (inet_gethost
    # makes its own group; it exits when the emulator's port closes.)
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _cmdline(pid: int) -> str:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    if stat.rsplit(")", 1)[-1].split()[0] == "Z":
        return ""   # a zombie is already dead
    return " " + raw.replace(b"\0", b" ").decode(errors="replace")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def node_env(workdir: Path, epmd_port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in SCRUBBED_ENV}
    env["ERL_EPMD_PORT"] = str(epmd_port)
    env["HOME"] = str(workdir)     # $HOME/.erlang.cookie is the cookie
    return env


# --- epmd ----------------------------------------------------------------------

def start_epmd(port: int, log: Path, wrap: tuple[str, ...] = (), host: str = "127.0.0.1") -> subprocess.Popen:
    with open(log, "ab") as out:
        proc = subprocess.Popen([*wrap, "epmd", "-port", str(port)], stdin=subprocess.DEVNULL,
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise ClusterError(f"epmd on port {port} exited with {proc.returncode}: see {log}")
        try:
            epmd_names(port, host)
            return proc
        except OSError:
            time.sleep(0.02)
    kill_proc(proc)
    raise ClusterError(f"epmd on port {port} did not answer within 10s")


def epmd_names(port: int, host: str = "127.0.0.1") -> dict[str, int]:
    """NAMES_REQ to the epmd on `port`: registered short names -> distribution ports."""
    with socket.create_connection((host, port), timeout=2) as s:
        s.sendall(b"\x00\x01n")
        data = b""
        while chunk := s.recv(4096):
            data += chunk
    return {m[1]: int(m[2]) for m in re.finditer(r"name (\S+) at port (\d+)", data[4:].decode())}


# --- talking to nodes ------------------------------------------------------------

CONNECT_ATTEMPTS = 3
_RESULT = re.compile(r'\{ok, \{(value|raised), "([0-9A-F]*)"\}\}')


def erl_eval(node: str, expr: str, *, env: dict[str, str], names: str = "long",
             timeout: float = 60.0) -> str:
    """Run `expr` (Erlang expressions, no final dot) on `node` via erl_call.

    Both ways go hex-encoded: erl_call hands its input over as Latin-1 bytes and
    prints strings without escaping quotes. The value comes back as ~0tp text.
    """
    source = (expr.strip().rstrip(".") + ".").encode().hex()
    wrapped = (
        'Fmt__ = fun(T__) -> binary_to_list(binary:encode_hex('
        'unicode:characters_to_binary(io_lib:format("~0tp", [T__])))) end, '
        f'try {{ok, Toks__, _}} = erl_scan:string(unicode:characters_to_list('
        f'binary:decode_hex(<<"{source}">>))), '
        '{ok, Exprs__} = erl_parse:parse_exprs(Toks__), '
        'element(2, erl_eval:exprs(Exprs__, [])) of R__ -> {value, Fmt__(R__)} '
        'catch C__:E__ -> {raised, Fmt__({C__, E__})} end.\n')
    flag = "-name" if names == "long" else "-sname"
    deadline = time.monotonic() + timeout
    for attempt in range(CONNECT_ATTEMPTS):
        try:
            proc = subprocess.run(["erl_call", flag, node, "-e"], input=wrapped, env=env,
                                  capture_output=True, text=True, timeout=max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            raise ClusterError(f"{node}: no answer within {timeout:g}s") from None
        out = (proc.stdout + proc.stderr).strip()
        # erl_call's own connect, on a loaded 2-core machine, now and then gives up at once:
        # asked again it gets through (the expression never ran, so it runs once)
        if proc.returncode == 0 or "failed to connect" not in out or attempt == CONNECT_ATTEMPTS - 1:
            break
        time.sleep(0.2 * (attempt + 1))
    match = _RESULT.search(out)
    if proc.returncode != 0 or match is None:
        raise ClusterError(f"{node}: erl_call failed (exit {proc.returncode}): {out[:300]}")
    text = bytes.fromhex(match[2]).decode()
    if match[1] == "raised":
        raise ClusterError(f"{node}: expression raised {text}")
    return text


# --- the cluster ---------------------------------------------------------------

def node_name(prefix: str, i: int, names: str, host: str | None = None) -> str:
    host = host or ("127.0.0.1" if names == "long" else socket.gethostname().split(".")[0])
    return f"{prefix}{i}@{host}"


def copy_target(template: Path, root: Path) -> None:
    # lib/ and erts are never written to by release_handler for same-erts upgrades,
    # but unpack_release overwrites lib files, so everything is a real copy.
    shutil.copytree(template, root, symlinks=True)
    (root / "log").mkdir(exist_ok=True)


def start_node(root: Path, name: str, peers: list[str], names: str,
               env: dict[str, str], wrap: tuple[str, ...] = ()) -> subprocess.Popen:
    args = [*wrap, str(root / "bin" / "start"), "-name" if names == "long" else "-sname", name, "-noinput",
            # Connect to the peers while booting, also when release_handler restarts
            # the node in place (init:restart keeps these arguments) after a failed
            # install: production clusters rejoin by themselves too. The timeout is
            # how long a boot waits for a peer that is down.
            "-kernel", "sync_nodes_optional", "[" + ",".join(f"'{p}'" for p in peers) + "]",
            "-kernel", "sync_nodes_timeout", str(SYNC_NODES_TIMEOUT_MS)]
    if name.endswith("@127.0.0.1"):
        # keep distribution on loopback, like the epmd lookups
        args += ["-kernel", "inet_dist_use_interface", "{127,0,0,1}"]
    with open(root / "log" / "node.log", "ab") as out:
        return subprocess.Popen(args, cwd=root, env=env, stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)


def start_cluster(build: DemoBuild, workdir: Path, n: int = 3, cookie: str | None = None,
                  epmd_port: int | None = None, names: str = "long",
                  name_prefix: str = "demo", host: str | None = None, wrap: tuple[str, ...] = (),
                  erl_flags: str = "") -> Cluster:
    """Start `n` demo nodes under `workdir`, joined into one cluster, and wait until
    every node has booted and sees all the others.

    epmd_port=None starts a private epmd on a free port (killed by stop()); a given
    port is used as is, and an epmd is started there only if none answers.
    host/wrap: the nodes' address and a command prefix (`ip netns exec NS`) for a bench that
    runs them elsewhere; erl_flags: ERL_FLAGS for the emulators (e.g. "+S 1" to keep 64 small).
    """
    if names not in ("long", "short"):
        raise ValueError("names must be 'long' or 'short'")
    workdir = Path(workdir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    cookie = cookie or secrets.token_hex(16)
    cookie_path = workdir / ".erlang.cookie"
    if cookie_path.exists():
        cookie_path.chmod(0o600)
    cookie_path.write_text(cookie)
    cookie_path.chmod(0o400)

    cluster = Cluster(nodes=[node_name(name_prefix, i, names, host) for i in range(1, n + 1)], pids=[],
                      roots=[workdir / f"{name_prefix}{i}" for i in range(1, n + 1)],
                      epmd_port=epmd_port or free_port(), epmd_pid=None, cookie=cookie,
                      workdir=workdir, names=names, epmd_host=host or "127.0.0.1")
    for root in cluster.roots:
        if root.exists():
            raise ClusterError(f"{root} exists: use a fresh workdir or stop the old cluster")
    try:
        if epmd_port is None or not _epmd_answers(epmd_port):
            epmd = start_epmd(cluster.epmd_port, workdir / "epmd.log", wrap, cluster.epmd_host)
            cluster._procs.append(epmd)
            cluster.epmd_pid = epmd.pid
        env = cluster.env()
        if erl_flags:
            env["ERL_FLAGS"] = erl_flags
        with ThreadPoolExecutor(max_workers=n) as pool:
            list(pool.map(lambda r: copy_target(build.target, r), cluster.roots))
        for root, name in zip(cluster.roots, cluster.nodes):
            peers = [p for p in cluster.nodes if p != name]
            proc = start_node(root, name, peers, names, env, wrap)
            cluster._procs.append(proc)
            cluster.pids.append(proc.pid)
        cluster.save()
        _wait_registered(cluster)
        _join(cluster)
    except BaseException:
        cluster.stop()
        raise
    return cluster


def _epmd_answers(port: int) -> bool:
    try:
        epmd_names(port)
        return True
    except OSError:
        return False


def _wait_registered(cluster: Cluster) -> None:
    wanted = {n.split("@")[0] for n in cluster.nodes}
    procs = cluster._procs[-len(cluster.nodes):]
    deadline = time.monotonic() + BOOT_TIMEOUT
    while True:
        for node, proc, root in zip(cluster.nodes, procs, cluster.roots):
            if proc.poll() is not None:
                raise ClusterError(f"{node} exited with {proc.returncode} while booting: "
                                   f"{_log_tail(root)}")
        if wanted <= set(epmd_names(cluster.epmd_port, cluster.epmd_host)):
            return
        if time.monotonic() > deadline:
            raise ClusterError(f"nodes not registered in epmd after {BOOT_TIMEOUT:g}s")
        time.sleep(0.05)


def _join(cluster: Cluster) -> None:
    """On every node at once: wait for the boot to finish, then ping the others
    until nodes() holds all of them."""
    def join(node: str) -> str:
        peers = ", ".join(f"'{p}'" for p in cluster.nodes if p != node)
        expr = f"""
            Peers = [{peers}],
            Deadline = erlang:monotonic_time(millisecond) + {int(BOOT_TIMEOUT * 1000)},
            Loop = fun L() ->
                Booted = element(1, init:get_status()) =:= started,
                _ = [net_adm:ping(P) || Booted, P <- Peers -- nodes()],
                Missing = Peers -- nodes(),
                Late = erlang:monotonic_time(millisecond) > Deadline,
                if (Booted andalso Missing =:= []) orelse Late -> {{Booted, Missing}};
                   true -> timer:sleep(20), L()
                end
            end,
            Loop()"""
        return cluster.eval(node, expr, timeout=BOOT_TIMEOUT + 10)

    with ThreadPoolExecutor(max_workers=len(cluster.nodes)) as pool:
        results = list(pool.map(join, cluster.nodes))
    for node, result in zip(cluster.nodes, results):
        if result != "{true,[]}":
            raise ClusterError(f"{node} did not boot and join the cluster: {result}")


def _log_tail(root: Path, lines: int = 5) -> str:
    try:
        text = (root / "log" / "node.log").read_text(errors="replace").strip().splitlines()
    except OSError:
        return "(no log)"
    return " | ".join(text[-lines:]) or "(empty log)"


# --- command line ----------------------------------------------------------------

def _status(cluster: Cluster) -> int:
    bad = 0
    print(f"epmd port {cluster.epmd_port}, cookie file {cluster.cookie_path}")
    for node, pid in zip(cluster.nodes, cluster.pids):
        try:
            info = cluster.eval(node, "{[{V, S} || {_, V, _, S} <- release_handler:which_releases()], "
                                      "demo_server:version(), demo_server:count(), lists:sort(nodes())}",
                                timeout=10)
            print(f"  {node} pid {pid}: {info}")
        except ClusterError as e:
            bad += 1
            print(f"  {node} pid {pid}: DOWN ({e})")
    return 1 if bad else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("cmd", choices=["start", "stop", "status"])
    parser.add_argument("--dir", type=Path, default=DEFAULT_DIR, help=f"cluster dir (default {DEFAULT_DIR})")
    parser.add_argument("--nodes", type=int, default=3)
    parser.add_argument("--cookie", default=None, help="default: a random one, stored in DIR/.erlang.cookie")
    parser.add_argument("--epmd-port", type=int, default=None, help="default: a free port")
    parser.add_argument("--names", choices=["long", "short"], default="long")
    parser.add_argument("--prefix", default="demo", help="node name prefix (default demo: demo1, demo2...)")
    args = parser.parse_args(argv)
    workdir = args.dir.resolve()
    try:
        if args.cmd == "start":
            if (workdir / STATE_FILE).exists():
                print(f"a cluster is recorded in {workdir / STATE_FILE}: stop it first", file=sys.stderr)
                return 1
            for i in range(1, args.nodes + 1):     # node roots left by an earlier, stopped run
                shutil.rmtree(workdir / f"{args.prefix}{i}", ignore_errors=True)
            started = time.monotonic()
            demo = build()
            cluster = start_cluster(demo, workdir, n=args.nodes, cookie=args.cookie,
                                    epmd_port=args.epmd_port, names=args.names, name_prefix=args.prefix)
            cluster._procs.clear()     # the nodes outlive this command
            print(f"started {len(cluster.nodes)} nodes in {time.monotonic() - started:.1f}s "
                  f"(state: {cluster.state_file})")
            return _status(cluster)
        if not (workdir / STATE_FILE).exists():
            print(f"no cluster recorded in {workdir}", file=sys.stderr)
            return 1
        cluster = Cluster.load(workdir)
        if args.cmd == "status":
            return _status(cluster)
        cluster.stop()
        (workdir / STATE_FILE).unlink()
        print(f"stopped {', '.join(cluster.nodes)}")
        return 0
    except ClusterError as e:
        print(f"demo_cluster: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
