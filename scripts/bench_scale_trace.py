#!/usr/bin/env python3
"""Where a scale install's time goes: a phase timeline, and the interleaved ratio.

    .venv/bin/python scripts/bench_scale_trace.py --nodes 16,32 --rounds 3 [--trace]

Each round, for each N: a fresh cluster for us (`erldeploy install 0.0.2 --tar T --cluster`,
the default strategy, a whole CLI process) and a fresh one for the native parallel
installer (scripts/native/install.escript), run back to back so both see the same load;
the median of the per-round ratios is printed. With --trace, one more fresh cluster per N
runs the same install in this process through the Python API with every phase timed
(wall and this process's CPU) and every progress event stamped: the timeline.
Load averages are printed beside each round: this machine is shared. --base DIR runs
another checkout too (`git archive main | tar -x -C DIR`), in the same rounds: an A/B.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
sys.path.insert(0, str(ROOT))

import bench_scale as bs  # noqa: E402
from demo_cluster import start_cluster  # noqa: E402
from demo_releases import build  # noqa: E402


def load() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def node_cpu(pids: list[int]) -> float:
    """CPU seconds (user+sys) the node emulators used so far."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        try:
            f = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(f[11]) + int(f[12])
        except OSError:
            pass
    return total / tick


def ours_on_fresh(demo, tar: Path, work: Path, n: int, tag: str, tree: Path | None = None
                  ) -> tuple[float, float, float]:
    """(wall, controller cpu, nodes' cpu) of one CLI install on a fresh cluster; tree: another
    checkout of erldeploy to run instead of this one (an A/B against main)."""
    with ExitStack() as stack:
        ours = start_cluster(demo, work / f"o{n}{tag}", n=n, name_prefix=f"to{n}{tag}x", erl_flags=bs.SMALL_NODE)
        stack.callback(ours.stop)
        c0 = node_cpu(ours.pids)
        cmd = bs._erldeploy(ours, "install", bs.VSN, "--tar", str(tar), "--cluster", "-q")
        if tree is not None:
            cmd[1] = str(tree / "scripts" / "bench_controller.py")
        m, cpu, _ = bs.measured(cmd, bs._env(ours))
        ncpu = node_cpu(ours.pids) - c0
        bs.check_on_all(ours, bs.VSN)
    return m.wall, cpu, ncpu


def one_round(demo, tar: Path, work: Path, n: int, tag: str, base: Path | None = None
              ) -> tuple[float, float, str, float | None]:
    bwall = None
    if base is not None:
        bwall, bcpu, bncpu = ours_on_fresh(demo, tar, work, n, tag + "b", base)
    wall, cpu, ncpu = ours_on_fresh(demo, tar, work, n, tag)
    with ExitStack() as stack:
        nat = start_cluster(demo, work / f"n{n}{tag}", n=n, name_prefix=f"tn{n}{tag}x", erl_flags=bs.SMALL_NODE)
        stack.callback(nat.stop)
        c0 = node_cpu(nat.pids)
        nm, ncpu_ctl, _ = bs.measured(["escript", str(bs.INSTALL_ESCRIPT), str(nat.cookie_path), str(tar),
                                       bs.VSN, *nat.nodes], bs._env(nat))
        nncpu = node_cpu(nat.pids) - c0
        bs.check_on_all(nat, bs.VSN)
    cpu_note = (f"cpu: ours controller {cpu:.2f}s + nodes {ncpu:.2f}s; "
                f"native escript {ncpu_ctl:.2f}s + nodes {nncpu:.2f}s")
    if bwall is not None:
        cpu_note += f"; base {bwall:.2f}s ({bwall / nm.wall:.2f}x), cpu {bcpu:.2f}s + nodes {bncpu:.2f}s"
    return wall, nm.wall, cpu_note, bwall


# --- the traced run ---------------------------------------------------------------------

class Timeline:
    """Marks: wall since the start, this process's CPU, the nodes' CPU (all emulators)."""

    def __init__(self, pids: list[int]) -> None:
        self.pids = pids
        self.t0 = time.perf_counter()
        self.c0 = time.process_time()
        self.n0 = node_cpu(pids)
        self.rows: list[tuple[float, float, float, str]] = []

    def mark(self, what: str) -> None:
        self.rows.append((time.perf_counter() - self.t0, time.process_time() - self.c0,
                          node_cpu(self.pids) - self.n0, what))


def _wrap(obj, attr: str, tl: Timeline, label: str) -> None:
    orig = getattr(obj, attr)

    async def timed(*a, **kw):
        w0, c0 = time.perf_counter(), time.process_time()
        tl.mark(f"{label} start")
        try:
            return await orig(*a, **kw)
        finally:
            tl.mark(f"{label} end ({time.perf_counter() - w0:.3f}s wall, {time.process_time() - c0:.3f}s cpu)")
    setattr(obj, attr, timed)


def _sync(obj, attr: str, tl: Timeline, label: str) -> None:
    orig = getattr(obj, attr)

    def timed(*a, **kw):
        w0, c0 = time.perf_counter(), time.process_time()
        try:
            return orig(*a, **kw)
        finally:
            tl.mark(f"{label} ({time.perf_counter() - w0:.3f}s wall, {time.process_time() - c0:.3f}s cpu)")
    setattr(obj, attr, timed)


def _span(obj, attr: str, tl: Timeline, label: str, method: bool = False) -> None:
    """Many concurrent calls: one line when the first starts and when the last of them ends."""
    orig = getattr(obj, attr)
    state = {"live": 0, "calls": 0, "w0": 0.0}

    async def timed(*a, **kw):
        if state["live"] == 0:
            state["w0"] = time.perf_counter()
            tl.mark(f"{label} first start")
        state["live"] += 1
        state["calls"] += 1
        try:
            return await orig(*a, **kw)
        finally:
            state["live"] -= 1
            if state["live"] == 0:
                tl.mark(f"{label} last end ({state['calls']} calls, {time.perf_counter() - state['w0']:.3f}s)")
                state["calls"] = 0
    setattr(obj, attr, timed)


async def traced(cluster, tar: Path, cli: bool = False) -> Timeline:
    from pyrlang_deploy import cluster as cluster_mod
    from pyrlang_deploy.release import install as inst
    from pyrlang_deploy.release import ship as ship_mod

    tl = Timeline(cluster.pids)
    cookie = cluster.cookie_path.read_text().strip()
    os.environ["ERL_EPMD_PORT"] = str(cluster.epmd_port)
    _wrap(inst, "prepare", tl, "preflight.prepare")
    _wrap(inst, "check_where_unpacked", tl, "check_where_unpacked")
    for m in ("adopt_all", "distribute", "install_batches", "make_permanent", "final_states"):
        _wrap(inst.Installer, m, tl, f"Installer.{m}")
    _wrap(ship_mod._Sender, "send", tl, "  ship: send one payload (seed + relay)")
    _span(ship_mod, "inventory", tl, "  ship: inventory, every node")
    from pyrlang_deploy.release.agent import AgentClient
    _span(AgentClient, "ensure_loaded", tl, "  agent loaded, every node", method=True)
    _sync(ship_mod, "contents_of", tl, "  ship: contents_of (local tar read)")
    _sync(ship_mod.payload_, "build", tl, "  ship: payload build")
    waves = {"i": 0}
    orig_each = inst.Installer.install_batches

    async def batches(self):
        orig_ec = self.c.each

        async def each(fn, nodes=None):
            if getattr(fn, "__name__", "") == "_install_one":
                waves["i"] += 1
                w0 = time.perf_counter()
                tl.mark(f"wave {waves['i']} ({len(nodes)} nodes) start")
                r = await orig_ec(fn, nodes)
                tl.mark(f"wave {waves['i']} end ({time.perf_counter() - w0:.3f}s)")
                return r
            return await orig_ec(fn, nodes)
        self.c.each = each
        try:
            return await orig_each(self)
        finally:
            self.c.each = orig_ec
    inst.Installer.install_batches = batches
    from pyrlang_deploy.release.executor_agent import AgentExecutor
    for m in ("decide", "close"):
        _wrap(AgentExecutor, m, tl, f"executor.{m}")
    events: list[tuple[float, str]] = []

    def on_event(ev) -> None:
        if ev.state != "progress":
            events.append((time.perf_counter() - tl.t0, f"{ev.node.split('@')[0]} {ev.step} {ev.state} "
                           f"{ev.detail[:60]} {ev.seconds:.3f}"))

    if cli:    # the CLI's own path (settings, connect, rendering), in this process and thread
        import threading

        from pyrlang_deploy.cli.main import main as cli_main
        tl.events = events
        rc: list = []

        def run() -> None:
            try:
                cli_main(["install", bs.VSN, "--tar", str(tar), "--cluster", "-q", "-n", cluster.nodes[0],
                          "--cookie-file", str(cluster.cookie_path)])
            except SystemExit as e:
                rc.append(e.code)
        tl.mark("cli main start")
        th = threading.Thread(target=run)
        th.start()
        th.join()
        tl.mark(f"cli main exited {rc}")
        return tl
    tl.mark("connect start")
    async with cluster_mod.Cluster([cluster.nodes[0]], cookie=cookie, discover=True) as c:
        tl.mark(f"connect end ({len(c.members)} members)")
        rep = await inst.transition(c, bs.VSN, inst.InstallOptions(tar=tar, on_event=on_event))
        tl.mark(f"install returned ok={rep.ok}")
    tl.mark("closed")
    if not rep.ok:
        raise RuntimeError(rep.message)
    tl.events = events
    return tl


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nodes", default="16,32")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--trace", action="store_true")
    ap.add_argument("--base", help="another erldeploy checkout (e.g. `git archive main`) run in each round too")
    ap.add_argument("--cli", action="store_true", help="with --trace: through the CLI's main(), in process")
    ap.add_argument("--events", action="store_true", help="with --trace: print every progress event")
    args = ap.parse_args()
    demo = build()
    tar = demo.tars[bs.VSN]
    sizes = [int(x) for x in args.nodes.split(",")]
    with tempfile.TemporaryDirectory(prefix="bench_trace_") as tmp:
        work = Path(tmp)
        if args.trace:
            for n in sizes:
                with ExitStack() as stack:
                    c = start_cluster(demo, work / f"t{n}", n=n, name_prefix=f"tt{n}x", erl_flags=bs.SMALL_NODE)
                    stack.callback(c.stop)
                    print(f"== trace N={n} (load {load()})")
                    tl = asyncio.run(traced(c, tar, cli=args.cli))
                    for w, cpu, ncpu, what in tl.rows:
                        print(f"  {w:7.3f}s  cpu {cpu:6.3f}s  nodes {ncpu:6.2f}s  {what}")
                    if args.events:
                        for w, what in tl.events:
                            print(f"  {w:7.3f}s     {what}")
                    bs.check_on_all(c, bs.VSN)
        base = Path(args.base).resolve() if args.base else None
        for n in sizes:
            ratios, bratios = [], []
            for r in range(args.rounds):
                ours, nat, note, bwall = one_round(demo, tar, work, n, f"r{r}", base)
                ratios.append(ours / nat)
                if bwall is not None:
                    bratios.append(bwall / nat)
                print(f"N={n} round {r}: ours {ours:.2f}s native {nat:.2f}s ratio {ours / nat:.2f}x "
                      f"(load {load()}); {note}", flush=True)
            if ratios:
                print(f"N={n}: median ratio {statistics.median(ratios):.2f}x over {len(ratios)} rounds"
                      + (f" (base: {statistics.median(bratios):.2f}x)" if bratios else ""), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
