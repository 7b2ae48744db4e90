#!/usr/bin/env python3
"""Whole-process CLI timings, beside native Erlang doing the same.

  cli_rpc       `erldeploy rpc -n NODE erlang node`, median wall time of RUNS runs,
                vs scripts/native/rpc_node.escript (a hidden escript node): ours <= 0.5x
  cli_erl_call  the same erldeploy figure beside `erl_call -a 'erlang node'` (C, reported only)
  cli_bare      the same erldeploy figure beside a bare `python -c pass` of the same
                interpreter: ours <= 4x (issue 14; the interpreter's own start is the floor)
  cli_help      `erldeploy --help`: under 150 ms
  cli_import    `python -X importtime -c 'import pyrlang_deploy.cli.main'` (reported only)
  cli_instr     instructions executed (valgrind's callgrind) by the rpc and by the bare
                interpreter: a count other load on this shared machine does not change
                (reported only; the targets are on wall time)

Runs are interleaved (ours, escript, erl_call, ours, ...) so a busy moment on the
machine hits every contender alike. Standalone (``python scripts/bench_cli.py``) or
``run() -> list[dict]`` (rows in scripts/bench's format); starts its own epmd and
target node on a free port and kills both.
"""

from __future__ import annotations

import json
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NATIVE = ROOT / "scripts" / "native"
ERLDEPLOY = ROOT / ".venv" / "bin" / "erldeploy"
PYTHON = ROOT / ".venv" / "bin" / "python"
RUNS = 10
TARGET_RPC = 0.5        # ours / escript
TARGET_BARE = 4.0       # ours / bare `python -c pass`
TARGET_HELP_MS = 150.0

sys.path.insert(0, str(ROOT / "tests"))


CPU: dict[str, list[float]] = {}   # user+sys seconds of each run, per command key


def timed(cmd: list[str], env: dict[str, str], expect: str | None = None, key: str | None = None) -> float:
    """Wall seconds of one whole process; raises if it fails or misses `expect` on stdout.
    With `key`, its CPU time (user+sys, less disturbed by a busy machine) goes to CPU[key]."""
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    wall = time.perf_counter() - t0
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    if key is not None:
        CPU.setdefault(key, []).append(r1.ru_utime + r1.ru_stime - r0.ru_utime - r0.ru_stime)
    if proc.returncode != 0 or (expect is not None and expect not in proc.stdout):
        raise RuntimeError(f"{Path(cmd[0]).name} exited {proc.returncode}: "
                           f"{(proc.stdout + proc.stderr).strip()[-400:]}")
    return wall


def median_interleaved(cmds: dict[str, tuple[list[str], dict[str, str], str | None]], runs: int
                       ) -> dict[str, float]:
    for cmd, env, expect in cmds.values():     # warm the page cache, .pyc files, epmd
        timed(cmd, env, expect)
    samples: dict[str, list[float]] = {k: [] for k in cmds}
    for _ in range(runs):
        for key, (cmd, env, expect) in cmds.items():
            samples[key].append(timed(cmd, env, expect, key))
    return {k: statistics.median(v) for k, v in samples.items()}


def import_time_ms() -> tuple[float, str]:
    """Cumulative import time of the CLI entry module, and its three heaviest imports."""
    proc = subprocess.run([str(PYTHON), "-X", "importtime", "-c", "import pyrlang_deploy.cli.main"],
                          capture_output=True, text=True, timeout=60)
    rows = []
    for line in proc.stderr.splitlines():
        m = re.match(r"import time:\s+(\d+) \|\s+(\d+) \|(\s*)(\S+)", line)
        if m:
            rows.append((int(m[2]), len(m[3]), m[4]))
    total = next((cum for cum, _, name in rows if name == "pyrlang_deploy.cli.main"), 0)
    top = sorted((r for r in rows if r[1] <= 3 and r[2] != "pyrlang_deploy.cli.main"), reverse=True)[:3]
    return total / 1000, ", ".join(f"{name} {cum / 1000:.0f}ms" for cum, _, name in top)


def instructions(cmd: list[str], env: dict[str, str]) -> int | None:
    """User-space instructions of one whole run of ``cmd`` under callgrind (None without valgrind)."""
    try:
        p = subprocess.run(["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", *cmd],
                           env=env, capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
    except FileNotFoundError:
        return None
    m = re.search(r"Collected : (\d+)", p.stderr)
    return int(m[1]) if m and p.returncode == 0 else None


def measure(epmd_port: int, node: str, cookie_file: Path, runs: int = RUNS) -> list[dict]:
    env = {**os.environ, "ERL_EPMD_PORT": str(epmd_port)}
    for k in ("ERLDEPLOY_COOKIE", "ERLDEPLOY_NODE", "ERLDEPLOY_CONFIG"):
        env.pop(k, None)
    # erl_call reads $HOME/.erlang.cookie: the cookie stays off every command line.
    erl_call_env = {**env, "HOME": str(cookie_file.parent)}
    name_flag = "-name" if "." in node.split("@", 1)[1] else "-sname"
    times = median_interleaved({
        "ours": ([str(ERLDEPLOY), "rpc", "-n", node, "--cookie-file", str(cookie_file), "erlang", "node"],
                 env, node),
        "escript": (["escript", str(NATIVE / "rpc_node.escript"), node, str(cookie_file)], env, node),
        "erl_call": (["erl_call", name_flag, node, "-a", "erlang node"], erl_call_env, node),
        "bare": ([str(PYTHON), "-c", "pass"], env, None),
        "help": ([str(ERLDEPLOY), "--help"], env, "Usage"),
    }, runs)
    imp_ms, heaviest = import_time_ms()
    rpc_cmd = [str(ERLDEPLOY), "rpc", "-n", node, "--cookie-file", str(cookie_file), "erlang", "node"]
    i_ours, i_bare = instructions(rpc_cmd, env), instructions([str(PYTHON), "-c", "pass"], env)
    ours, esc, ec, bare = times["ours"], times["escript"], times["erl_call"], times["bare"]
    return [
        {"section": "cli", "name": "rpc -n NODE erlang node (wall, median)", "unit": "ms",
         "ours": ours * 1e3, "native": esc * 1e3, "native_label": "escript",
         "ratio": ours / esc, "target": TARGET_RPC, "cmp": "<="},
        {"section": "cli", "name": "same, beside erl_call (C)", "unit": "ms",
         "ours": ours * 1e3, "native": ec * 1e3, "native_label": "erl_call",
         "ratio": ours / ec, "target": None, "cmp": None},
        {"section": "cli", "name": "same, beside a bare `python -c pass`", "unit": "ms",
         "ours": ours * 1e3, "native": bare * 1e3, "native_label": "python -c pass",
         "ratio": ours / bare, "target": TARGET_BARE, "cmp": "<=",
         "note": "CPU user+sys: ours {:.1f} ms, bare {:.1f} ms, {:.2f}x".format(
             statistics.median(CPU["ours"]) * 1e3, statistics.median(CPU["bare"]) * 1e3,
             statistics.median(CPU["ours"]) / statistics.median(CPU["bare"]))},
        {"section": "cli", "name": "erldeploy --help (wall, median)", "unit": "ms",
         "ours": times["help"] * 1e3, "native": None, "native_label": None,
         "ratio": None, "target": TARGET_HELP_MS, "cmp": "value<"},
        {"section": "cli", "name": "same, instructions (callgrind), beside the bare one", "unit": "M",
         "ours": (i_ours or 0) / 1e6, "native": (i_bare or 0) / 1e6, "native_label": "python -c pass",
         "ratio": i_ours / i_bare if i_ours and i_bare else None, "target": None, "cmp": None},
        {"section": "cli", "name": "import pyrlang_deploy.cli.main (-X importtime)", "unit": "ms",
         "ours": imp_ms, "native": None, "native_label": None, "ratio": None, "target": None,
         "cmp": None, "note": f"heaviest: {heaviest}"},
    ]


def run(runs: int = RUNS) -> list[dict]:
    """Start a private epmd and one plain `erl` target node, measure, kill both."""
    import compileall

    from support.nodes import Epmd, ErlNode

    # byte-compile first, as `pip install` does: a shell with PYTHONDONTWRITEBYTECODE
    # would otherwise time the compiler on every run, not the CLI
    compileall.compile_dir(str(ROOT / "pyrlang_deploy"), quiet=1)
    with tempfile.TemporaryDirectory(prefix="bench_cli_") as tmp, Epmd() as epmd:
        target = ErlNode(epmd, cookie=None, long=True)
        cookie_file = Path(tmp) / ".erlang.cookie"
        cookie_file.write_text(target.cookie)
        cookie_file.chmod(0o400)
        target.start()
        try:
            return measure(epmd.port, target.node, cookie_file, runs)
        finally:
            target.kill()


def main() -> int:
    rows = run(int(sys.argv[1]) if len(sys.argv) > 1 and sys.argv[1].isdigit() else RUNS)
    if "--json" in sys.argv:
        print(json.dumps(rows, indent=2))
        return 0
    for r in rows:
        nat = f"  {r['native_label']} {r['native']:.1f} ms  ratio {r['ratio']:.2f}x" if r["native"] else ""
        print(f"{r['name']:<48} ours {r['ours']:8.1f} ms{nat}  {r.get('note', '')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
