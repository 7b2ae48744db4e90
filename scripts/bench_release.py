#!/usr/bin/env python3
"""Release-management timings on fresh demo clusters, beside native Erlang in the same run.

  install   `erldeploy install 0.0.2 --tar T -n N1 --cluster --strategy all` on a fresh
            3-node demo cluster (whole CLI process), vs scripts/native/install.escript doing
            upload (file:write_file over rpc), unpack_release, install_release and
            make_permanent on three other fresh nodes in parallel (whole process): ours <= 1.5x
            native. Reported beside it (each on its own fresh cluster): the default canary
            strategy (node by node by design),
            `--no-agent` (plain RPC, no guard and its settle window), and
            the default install through the Python API (Cluster.install) beside the
            escript's own timer (no emulator start).
  status    `erldeploy status -n N1 --cluster` on a 16-node cluster vs on a 1-node
            cluster, median of RUNS whole processes: <= 2x. The Python API figure
            (Cluster.status) is reported beside it, and code:modified_modules() alone
            (node-side CPU that status includes: the floor when all nodes share a host).

Every cluster has its own private epmd and cookie file and is stopped in a finally.
Standalone: ``python scripts/bench_release.py [--json]``; importable: ``run() -> list[dict]``
(rows in scripts/bench's format).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
sys.path.insert(0, str(ROOT))

from demo_cluster import Cluster, start_cluster  # noqa: E402
from demo_releases import DemoBuild, build  # noqa: E402

ERLDEPLOY = ROOT / ".venv" / "bin" / "erldeploy"
INSTALL_ESCRIPT = ROOT / "scripts" / "native" / "install.escript"
VSN = "0.0.2"
STATUS_NODES = 16
RUNS = 5
TARGET_INSTALL = 1.5
TARGET_STATUS = 2.0


def _env(cluster: Cluster) -> dict[str, str]:
    env = {**os.environ, "ERL_EPMD_PORT": str(cluster.epmd_port)}
    for k in ("ERLDEPLOY_COOKIE", "ERLDEPLOY_NODE", "ERLDEPLOY_CONFIG"):
        env.pop(k, None)
    return env


def _timed(cmd: list[str], env: dict[str, str], ok_codes: tuple[int, ...] = (0,)) -> tuple[float, str]:
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
    wall = time.perf_counter() - t0
    if proc.returncode not in ok_codes:
        raise RuntimeError(f"{Path(cmd[0]).name} {' '.join(cmd[1:3])} exited {proc.returncode}: "
                           f"{(proc.stdout + proc.stderr).strip()[-600:]}")
    return wall, proc.stdout


def _erldeploy(cluster: Cluster, *args: str) -> list[str]:
    return [str(ERLDEPLOY), *args, "-n", cluster.nodes[0], "--cookie-file", str(cluster.cookie_path)]


def _check_permanent(cluster: Cluster, vsn: str) -> None:
    """Every node runs `vsn`, permanent, with demo_server on it: the install really happened."""
    for node in cluster.nodes:
        got = cluster.eval(node, "{[{V, S} || {_, V, _, S} <- release_handler:which_releases(), "
                                 "S =/= old], demo_server:version()}", timeout=30)
        want = f'{{[{{"{vsn}",permanent}}],"{vsn}"}}'
        if got != want:
            raise RuntimeError(f"{node}: after the install: {got}, expected {want}")


def _parse_native(out: str) -> tuple[float, str]:
    """install.escript's {ok, Seconds, [{Node, [{Step, Seconds}]}]} -> (Seconds, mean step times)."""
    m = re.match(r"\{ok,([0-9.e+-]+),", out.strip())
    if m is None:
        raise RuntimeError(f"install.escript: unexpected output {out.strip()[:300]}")
    steps: dict[str, list[float]] = {}
    for step, secs in re.findall(r"\{(upload|unpack|install|permanent),([0-9.e+-]+)\}", out):
        steps.setdefault(step, []).append(float(secs))
    return float(m[1]), ", ".join(f"{k} {statistics.mean(v):.2f}s" for k, v in steps.items())


def _api(cluster: Cluster):
    from pyrlang_deploy.cluster import Cluster as Api
    return Api([cluster.nodes[0]], cookie=cluster.cookie, epmd_port=cluster.epmd_port, discover=True)


async def _api_install(cluster: Cluster, tar: Path) -> float:
    t0 = time.perf_counter()
    async with _api(cluster) as c:
        report = await c.install(VSN, tar=tar)
    wall = time.perf_counter() - t0
    if not report.ok:
        raise RuntimeError(f"Cluster.install: {report.message}")
    return wall


async def _api_modified_modules(cluster: Cluster, runs: int) -> float:
    """code:modified_modules() on every node at once: work done on the nodes themselves
    (an md5 of every loaded module), which status includes. With all nodes on this one
    machine it is the floor of what status on 16 nodes can take."""
    times = []
    async with _api(cluster) as c:
        for _ in range(runs):
            t0 = time.perf_counter()
            res = await c.rpc_all("code", "modified_modules", [])
            times.append(time.perf_counter() - t0)
            if not all(r.ok for r in res.values()):
                raise RuntimeError("code:modified_modules() failed on a node")
    return statistics.median(times)


async def _api_status(cluster: Cluster, runs: int) -> float:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        async with _api(cluster) as c:
            st = await c.status()
        times.append(time.perf_counter() - t0)
        if not st.ok or len(st.nodes) != len(cluster.nodes):
            raise RuntimeError(f"Cluster.status on {len(cluster.nodes)} nodes: not ok or missing nodes")
    return statistics.median(times)


def bench_install(demo: DemoBuild, workdir: Path, stack: ExitStack) -> list[dict]:
    tar = demo.tars[VSN]
    clusters = {}
    # ours (CLI), native, ours (CLI: --strategy all, --no-agent), ours (API): all fresh, same size
    for prefix in ("bi", "bn", "bp", "bg", "ba"):
        c = start_cluster(demo, workdir / prefix, n=3, name_prefix=prefix)
        stack.callback(c.stop)
        clusters[prefix] = c

    native = clusters["bn"]
    native_wall, out = _timed(["escript", str(INSTALL_ESCRIPT), str(native.cookie_path), str(tar), VSN,
                               *native.nodes], _env(native))
    native_inner, native_steps = _parse_native(out)
    _check_permanent(native, VSN)

    ours = clusters["bi"]
    ours_wall, _ = _timed(_erldeploy(ours, "install", VSN, "--tar", str(tar), "--cluster", "-q"), _env(ours))
    _check_permanent(ours, VSN)

    par = clusters["bp"]
    par_wall, _ = _timed(_erldeploy(par, "install", VSN, "--tar", str(tar), "--cluster", "-q",
                                    "--strategy", "all"), _env(par))
    _check_permanent(par, VSN)

    plain = clusters["bg"]
    plain_wall, _ = _timed(_erldeploy(plain, "install", VSN, "--tar", str(tar), "--cluster", "-q",
                                      "--no-agent"), _env(plain))
    _check_permanent(plain, VSN)

    api = clusters["ba"]
    api_wall = asyncio.run(_api_install(api, tar))
    _check_permanent(api, VSN)

    return [
        # the target compares like with like: the escript does the three nodes in parallel
        {"section": "release", "name": f"install {VSN} on 3 nodes --strategy all (CLI process)",
         "unit": "s", "ours": par_wall, "native": native_wall, "native_label": "escript",
         "ratio": par_wall / native_wall, "target": TARGET_INSTALL, "cmp": "<=",
         "note": f"escript, mean per node: {native_steps}"},
        {"section": "release", "name": f"install {VSN} on 3 nodes, default canary (CLI process)", "unit": "s",
         "ours": ours_wall, "native": native_wall, "native_label": "escript",
         "ratio": ours_wall / native_wall, "target": None, "cmp": None,
         "note": "canary, then the rest one by one: sequential by design"},
        {"section": "release", "name": f"install {VSN} on 3 nodes --no-agent (CLI process)",
         "unit": "s", "ours": plain_wall, "native": native_wall, "native_label": "escript",
         "ratio": plain_wall / native_wall, "target": None, "cmp": None},
        {"section": "release", "name": f"install {VSN} on 3 nodes (Python API)", "unit": "s",
         "ours": api_wall, "native": native_inner, "native_label": "escript, connected",
         "ratio": api_wall / native_inner, "target": None, "cmp": None,
         "note": "API: connect + discover + install; escript: its own timer, after the emulator started"},
    ]


def bench_status(demo: DemoBuild, workdir: Path, stack: ExitStack, runs: int) -> list[dict]:
    one = start_cluster(demo, workdir / "s1", n=1, name_prefix="sone")
    stack.callback(one.stop)
    many = start_cluster(demo, workdir / "s16", n=STATUS_NODES, name_prefix="sm")
    stack.callback(many.stop)

    def cmd(c: Cluster) -> tuple[list[str], dict[str, str]]:
        return _erldeploy(c, "status", "--cluster", "--json"), _env(c)

    for c in (one, many):                      # warm-up, and check it sees every node
        _, out = _timed(*cmd(c))
        seen = len(json.loads(out)["nodes"])
        if seen != len(c.nodes):
            raise RuntimeError(f"status --cluster saw {seen} of {len(c.nodes)} nodes")
    samples: dict[int, list[float]] = {1: [], STATUS_NODES: []}
    for _ in range(runs):                      # interleaved
        samples[1].append(_timed(*cmd(one))[0])
        samples[STATUS_NODES].append(_timed(*cmd(many))[0])
    t1, t16 = statistics.median(samples[1]), statistics.median(samples[STATUS_NODES])
    a1 = asyncio.run(_api_status(one, runs))
    a16 = asyncio.run(_api_status(many, runs))
    m1 = asyncio.run(_api_modified_modules(one, runs))
    m16 = asyncio.run(_api_modified_modules(many, runs))
    return [
        {"section": "release", "name": f"status --cluster, {STATUS_NODES} nodes vs 1 (CLI, median)",
         "unit": "s", "ours": t16, "native": t1, "native_label": "ours on 1 node",
         "ratio": t16 / t1, "target": TARGET_STATUS, "cmp": "<="},
        {"section": "release", "name": f"status, {STATUS_NODES} nodes vs 1 (Python API, median)",
         "unit": "s", "ours": a16, "native": a1, "native_label": "ours on 1 node",
         "ratio": a16 / a1, "target": None, "cmp": None},
        {"section": "release", "name": f"code:modified_modules() alone, {STATUS_NODES} nodes vs 1",
         "unit": "s", "ours": m16, "native": m1, "native_label": "on 1 node",
         "ratio": m16 / m1, "target": None, "cmp": None,
         "note": f"node-side work inside status; {STATUS_NODES} nodes share this machine's "
                 f"{os.cpu_count()} cores"},
    ]


def run(runs: int = RUNS) -> list[dict]:
    demo = build()
    workdir = Path(tempfile.mkdtemp(prefix="bench_release_"))
    try:
        rows = []
        with ExitStack() as stack:       # stops every cluster, whatever happens
            rows += bench_install(demo, workdir, stack)
        with ExitStack() as stack:
            rows += bench_status(demo, workdir, stack, runs)
        return rows
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def main() -> int:
    rows = run()
    if "--json" in sys.argv:
        print(json.dumps(rows, indent=2))
        return 0
    for r in rows:
        print(f"{r['name']:<55} ours {r['ours']:7.3f}s  {r['native_label']} {r['native']:7.3f}s  "
              f"ratio {r['ratio']:.2f}x" + (f"  (target <= {r['target']}x)" if r["target"] else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
