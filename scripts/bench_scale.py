#!/usr/bin/env python3
"""Scale and transfer benchmarks (issue 12), each beside native Erlang in the same run.

  scale   N = 1, 4, 16, 32, 64 local demo nodes (--nodes): `erldeploy status --cluster`,
          `install 0.0.2 --tar T` (default strategy: canary, then growing waves) and
          `rollback` as whole CLI processes, with the controller's CPU seconds, peak RSS
          and bytes it sent (bench_controller.py counts what goes to its sockets; the
          escript's: /proc/PID/io wchar, polled), beside
          scripts/native/install.escript (every node at once) on an identical fresh cluster.
          Prints the growth exponent (slope of log time over log N). Goals: install on 32
          nodes <= 0.5x native; controller peak RSS <= 100 MB at 64 nodes.
  wan     8 nodes in a network namespace made here, behind a veth pair shaped with tc to
          100 Mbit/s (both ways); the controller outside. Bytes crossing the link (the veth
          counters) and wall time: a patch release (install 0.0.2, delta + relay) vs the
          native installer on fresh nodes, and a full tarball (`erldeploy upload`, relayed) vs
          one tarball. Goals: both <= 1.5x one tarball crossing.

Nodes run with small emulators (+S 1, few async threads, a small process limit) so 64 fit
this machine; every cluster has its own epmd and is stopped in a finally; the namespace
and the veth are deleted in a finally too. Importable: run_scale(sizes), run_wan(n).
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import ExitStack
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
sys.path.insert(0, str(ROOT))

from demo_cluster import Cluster, kill_proc, start_cluster, start_epmd  # noqa: E402
from demo_releases import build  # noqa: E402

PYTHON = ROOT / ".venv" / "bin" / "python"
COUNTING = ROOT / "scripts" / "bench_controller.py"
os.environ.setdefault("BENCH_BYTES_FILE", str(Path(tempfile.gettempdir()) / f"bench_sent_{os.getpid()}"))
INSTALL_ESCRIPT = ROOT / "scripts" / "native" / "install.escript"
VSN = "0.0.2"
SIZES = (1, 4, 16, 32, 64)
SMALL_NODE = "+S 1:1 +SDcpu 1:1 +SDio 1 +A 1 +P 16384 +hmqd off_heap"
TARGET_INSTALL_32 = 0.5
TARGET_RSS_MB = 100.0
TARGET_WAN = 1.5
RATE = "100mbit"


# --- a process, measured ------------------------------------------------------------

class Measured:
    """A whole process: wall, CPU (user+sys, children included), peak RSS, bytes written."""

    def __init__(self, cmd: list[str], env: dict[str, str], timeout: float = 600):
        self.cmd = cmd
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                stdin=subprocess.DEVNULL, text=True)
        self.wchar = 0
        stop = threading.Event()

        def poll() -> None:       # the last value before exit: what it wrote, sockets included
            while not stop.is_set():
                try:
                    m = re.search(r"wchar: (\d+)", Path(f"/proc/{proc.pid}/io").read_text())
                    if m:
                        self.wchar = max(self.wchar, int(m[1]))
                except OSError:
                    return
                stop.wait(0.02)

        th = threading.Thread(target=poll, daemon=True)
        th.start()
        try:
            self.out, self.err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            raise RuntimeError(f"{Path(cmd[0]).name} {' '.join(cmd[1:3])}: no answer within {timeout:g}s") from None
        finally:
            stop.set()
            th.join()
        self.wall = time.perf_counter() - t0
        self.rc = proc.returncode
        if self.rc != 0:
            raise RuntimeError(f"{Path(cmd[0]).name} {' '.join(cmd[1:3])} exited {self.rc}: "
                               f"{(self.out + self.err).strip()[-600:]}")


def measured(cmd: list[str], env: dict[str, str]) -> tuple[Measured, float, float]:
    """(process, cpu seconds, children's peak RSS so far) of one child, from the rusage delta."""
    import resource
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    m = Measured(cmd, env)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    # ru_maxrss of children is the largest so far (KiB): exact for the first, a bound after
    rss = after.ru_maxrss / 1024.0
    return m, cpu, rss


def _env(cluster: Cluster) -> dict[str, str]:
    env = {**os.environ, "ERL_EPMD_PORT": str(cluster.epmd_port)}
    for k in ("ERLDEPLOY_COOKIE", "ERLDEPLOY_NODE", "ERLDEPLOY_CONFIG", "ERL_FLAGS"):
        env.pop(k, None)
    return env


def _erldeploy(cluster: Cluster, *args: str) -> list[str]:
    """The CLI as a whole process, through bench_controller.py: it counts the bytes it sends."""
    return [str(PYTHON), str(COUNTING), *args, "-n", cluster.nodes[0], "--cookie-file", str(cluster.cookie_path)]


def sent_bytes() -> int:
    """What the last _erldeploy process sent (bench_controller.py wrote it at exit)."""
    return int(Path(os.environ["BENCH_BYTES_FILE"]).read_text())


def _rss_of(cmd: list[str], env: dict[str, str]) -> float:
    """Peak RSS (MB) of exactly this process, from its own rusage (wait4)."""
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=err, stdin=subprocess.DEVNULL)
        _, status, ru = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            err.seek(0)
            raise RuntimeError(f"{Path(cmd[0]).name} {' '.join(cmd[1:3])} exited {proc.returncode}: "
                               f"{err.read().decode(errors='replace')[-600:]}")
    return ru.ru_maxrss / 1024.0


def check_on_all(cluster: Cluster, vsn: str) -> None:
    """Every node runs vsn, permanent: asked from the first node with rpc:multicall (one erl_call)."""
    nodes = ", ".join(f"'{n}'" for n in cluster.nodes)
    got = cluster.eval(cluster.nodes[0], f"""
        {{Rs, Bad}} = rpc:multicall([{nodes}], erlang, apply, [fun() ->
            {{node(), [{{V, S}} || {{_, V, _, S}} <- release_handler:which_releases(), S =/= old]}} end, []], 60000),
        {{Bad, [N || {{N, R}} <- Rs, R =/= [{{"{vsn}", permanent}}]]}}""", timeout=120)
    if got != "{[],[]}":
        raise RuntimeError(f"after the run, not on {vsn} permanent (unreachable, wrong): {got[:400]}")


def growth(points: dict[int, float]) -> float:
    """Least-squares slope of log(t) over log(N): 1.0 is linear, 0 is flat."""
    xs = [math.log(n) for n in points]
    ys = [math.log(max(t, 1e-6)) for t in points.values()]
    mx, my = statistics.mean(xs), statistics.mean(ys)
    den = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / den if den else 0.0


# --- scale ----------------------------------------------------------------------------

def run_scale(sizes: tuple[int, ...] = SIZES, runs: int = 3) -> list[dict]:
    demo = build()
    tar = demo.tars[VSN]
    work = Path(tempfile.mkdtemp(prefix="bench_scale_"))
    rows: list[dict] = []
    times: dict[str, dict[int, float]] = {"status": {}, "install": {}, "native": {}, "rollback": {}}
    try:
        for n in sizes:
            with ExitStack() as stack:
                ours = start_cluster(demo, work / f"o{n}", n=n, name_prefix=f"so{n}x", erl_flags=SMALL_NODE)
                stack.callback(ours.stop)
                env = _env(ours)
                st = [measured(_erldeploy(ours, "status", "--cluster", "--json"), env) for _ in range(runs)]
                seen = len(json.loads(st[0][0].out)["nodes"])
                if seen != n:
                    raise RuntimeError(f"status saw {seen} of {n} nodes")
                t_status = statistics.median(m.wall for m, _, _ in st)
                inst, inst_cpu, _ = measured(_erldeploy(ours, "install", VSN, "--tar", str(tar), "--cluster",
                                                        "-q"), env)
                inst_sent = sent_bytes()
                check_on_all(ours, VSN)
                rb, rb_cpu, _ = measured(_erldeploy(ours, "rollback", "--cluster", "-q"), env)
                check_on_all(ours, demo.target_vsn)
            with ExitStack() as stack:    # install's own peak RSS, exactly, on a fresh cluster
                again = start_cluster(demo, work / f"r{n}", n=n, name_prefix=f"sr{n}x", erl_flags=SMALL_NODE)
                stack.callback(again.stop)
                rss = _rss_of(_erldeploy(again, "install", VSN, "--tar", str(tar), "--cluster", "-q"),
                                 _env(again))
                check_on_all(again, VSN)
            with ExitStack() as stack:
                native = start_cluster(demo, work / f"n{n}", n=n, name_prefix=f"sn{n}x", erl_flags=SMALL_NODE)
                stack.callback(native.stop)
                nat, nat_cpu, _ = measured(["escript", str(INSTALL_ESCRIPT), str(native.cookie_path), str(tar),
                                            VSN, *native.nodes], _env(native))
                check_on_all(native, VSN)
            times["status"][n], times["install"][n] = t_status, inst.wall
            times["native"][n], times["rollback"][n] = nat.wall, rb.wall
            rows.append({"section": "scale", "name": f"install {VSN} on {n} nodes, default strategy (CLI)",
                         "unit": "s", "ours": inst.wall, "native": nat.wall, "native_label": "escript, parallel",
                         "ratio": inst.wall / nat.wall, "target": TARGET_INSTALL_32 if n == 32 else None,
                         "cmp": "<=" if n == 32 else None,
                         "note": f"controller: cpu {inst_cpu:.2f}s, peak RSS {rss:.0f} MB, sent "
                                 f"{inst_sent / 1e6:.2f} MB; escript: cpu {nat_cpu:.2f}s, wrote "
                                 f"{nat.wchar / 1e6:.1f} MB (wchar); rollback {rb.wall:.2f}s (cpu {rb_cpu:.2f}s); "
                                 f"status {t_status:.3f}s"})
            if n == max(sizes):
                rows.append({"section": "scale", "name": f"controller peak RSS, install on {n} nodes",
                             "unit": "MB", "ours": rss, "native": None, "native_label": "", "ratio": None,
                             "target": TARGET_RSS_MB, "cmp": "value<"})
            print(f"bench scale: N={n} done", file=sys.stderr, flush=True)
        if 1 in times["status"] and 32 in times["status"]:
            rows.append({"section": "scale", "name": "status --cluster, 32 nodes vs 1 (CLI, median)", "unit": "s",
                         "ours": times["status"][32], "native": times["status"][1],
                         "native_label": "ours on 1 node", "ratio": times["status"][32] / times["status"][1],
                         "target": 2.0, "cmp": "<="})
        if len(sizes) > 1:
            for what, pts in times.items():
                rows.append({"section": "scale", "name": f"growth exponent, {what} (log t / log N)", "unit": "",
                             "ours": growth(pts), "native": None, "native_label": "", "ratio": None,
                             "target": None, "cmp": None,
                             "note": ", ".join(f"N={k}: {v:.2f}s" for k, v in pts.items())})
        return rows
    finally:
        shutil.rmtree(work, ignore_errors=True)


# --- wan --------------------------------------------------------------------------------

class Link:
    """A network namespace and a veth pair, shaped to RATE both ways; deleted on close()."""

    def __init__(self) -> None:
        k = os.getpid() % 250 + 1
        self.ns = f"edwan{os.getpid()}"
        self.host_if, self.ns_if = f"edh{os.getpid() % 100000}", f"edn{os.getpid() % 100000}"
        self.host_ip, self.ns_ip = f"10.254.{k}.1", f"10.254.{k}.2"
        self._made: list[list[str]] = []

    def _ip(self, *args: str) -> None:
        subprocess.run(["ip", *args], check=True, timeout=20, capture_output=True)

    def open(self) -> None:
        self._ip("netns", "add", self.ns)
        self._made.append(["netns", "del", self.ns])
        self._ip("link", "add", self.host_if, "type", "veth", "peer", "name", self.ns_if)
        self._made.append(["link", "del", self.host_if])
        self._ip("link", "set", self.ns_if, "netns", self.ns)
        self._ip("addr", "add", f"{self.host_ip}/30", "dev", self.host_if)
        self._ip("link", "set", self.host_if, "up")
        ns = ["netns", "exec", self.ns, "ip"]
        self._ip(*ns, "addr", "add", f"{self.ns_ip}/30", "dev", self.ns_if)
        self._ip(*ns, "link", "set", self.ns_if, "up")
        self._ip(*ns, "link", "set", "lo", "up")
        for wrap, dev in (([], self.host_if), (["ip", "netns", "exec", self.ns], self.ns_if)):
            subprocess.run([*wrap, "tc", "qdisc", "add", "dev", dev, "root", "tbf", "rate", RATE,
                            "burst", "256kbit", "latency", "100ms"], check=True, timeout=20, capture_output=True)

    @property
    def wrap(self) -> tuple[str, ...]:
        return ("ip", "netns", "exec", self.ns)

    def bytes(self) -> int:
        """Bytes across the link so far, both directions (the host side's counters)."""
        base = Path(f"/sys/class/net/{self.host_if}/statistics")
        return int((base / "tx_bytes").read_text()) + int((base / "rx_bytes").read_text())

    def close(self) -> None:
        for cmd in reversed(self._made):
            subprocess.run(["ip", *cmd], timeout=20, capture_output=True)
        self._made.clear()


def run_wan(n: int = 8) -> list[dict]:
    demo = build()
    tar = demo.tars[VSN]
    size = tar.stat().st_size
    work = Path(tempfile.mkdtemp(prefix="bench_wan_"))
    link = Link()
    rows = []
    try:
        link.open()

        def cluster(tag: str) -> Cluster:
            return start_cluster(demo, work / tag, n=n, name_prefix=f"w{tag}", host=link.ns_ip, wrap=link.wrap,
                                 erl_flags=SMALL_NODE)

        def across(cmd_of, tag: str, host_epmd: bool = False) -> tuple[float, int, Cluster]:
            c = cluster(tag)
            stack.callback(c.stop)
            if host_epmd:   # the escript is a named node: it registers with an epmd on this side
                e = start_epmd(c.epmd_port, work / f"epmd-{tag}.log")
                stack.callback(kill_proc, e)
            b0 = link.bytes()
            t0 = time.perf_counter()
            Measured(cmd_of(c), _env(c))
            return time.perf_counter() - t0, link.bytes() - b0, c

        with ExitStack() as stack:
            t_ours, b_ours, c = across(lambda c: _erldeploy(c, "install", VSN, "--tar", str(tar), "--cluster", "-q"),
                                       "p")
            check_on_all(c, VSN)
            t_nat, b_nat, c = across(lambda c: ["escript", str(INSTALL_ESCRIPT), str(c.cookie_path), str(tar), VSN,
                                                *c.nodes], "n", host_epmd=True)
            check_on_all(c, VSN)
            t_full, b_full, c = across(lambda c: _erldeploy(c, "upload", str(tar), "--cluster", "-q"), "f")
        rows += [
            {"section": "wan", "name": f"patch release on {n} nodes over {RATE}: bytes across the link",
             "unit": "MB", "ours": b_ours / 1e6, "native": size / 1e6, "native_label": "one tarball",
             "ratio": b_ours / size, "target": TARGET_WAN, "cmp": "<=",
             "note": f"ours {t_ours:.2f}s; native escript {t_nat:.2f}s, {b_nat / 1e6:.1f} MB "
                     f"({b_nat / size:.1f} tarballs)"},
            {"section": "wan", "name": f"patch release on {n} nodes over {RATE}: wall vs native", "unit": "s",
             "ours": t_ours, "native": t_nat, "native_label": "escript, parallel", "ratio": t_ours / t_nat,
             "target": None, "cmp": None},
            {"section": "wan", "name": f"full tarball to {n} nodes over {RATE} (erldeploy upload, relayed)",
             "unit": "MB", "ours": b_full / 1e6, "native": size / 1e6, "native_label": "one tarball",
             "ratio": b_full / size, "target": TARGET_WAN, "cmp": "<=", "note": f"{t_full:.2f}s"},
        ]
        return rows
    finally:
        link.close()
        shutil.rmtree(work, ignore_errors=True)


def main() -> int:
    import argparse
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scale", action="store_true")
    ap.add_argument("--wan", action="store_true")
    ap.add_argument("--nodes", default=",".join(map(str, SIZES)))
    args = ap.parse_args()
    rows = []
    if args.scale or not args.wan:
        rows += run_scale(tuple(int(x) for x in args.nodes.split(",")))
    if args.wan:
        rows += run_wan()
    print(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
