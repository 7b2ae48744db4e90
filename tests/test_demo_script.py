"""scripts/demo end to end, as a newcomer runs it: a real three-node cluster, a real hot
upgrade and rollback through the erldeploy CLI, and nothing left running afterwards.

Each run gets its own ERLDEPLOY_DEMO_DIR (hence its own private epmd port and cookie).
While the demo runs, the test reads the pids the cluster recorded in cluster.json, so
it can check afterwards that every one of them is gone, whatever way the demo ended.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DEMO = REPO / "scripts" / "demo"
sys.path.insert(0, str(REPO / "scripts"))

from demo_cluster import Cluster, _cmdline  # noqa: E402

NODES = [f"demo{i}@127.0.0.1" for i in (1, 2, 3)]


@dataclass
class DemoRun:
    rc: int
    out: str
    seconds: float
    workdir: Path
    state: dict = field(default_factory=dict)    # cluster.json as seen while the demo ran


def _processes_mentioning(text: str) -> list[str]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            cmd = _cmdline(int(entry.name))
            if text in cmd:
                found.append(f"{entry.name}:{cmd.strip()[:120]}")
    return found


def run_demo(workdir: Path, *, env: dict[str, str] | None = None, interrupt_at: str | None = None,
             timeout: float = 120.0) -> DemoRun:
    """Run scripts/demo in its own session; with interrupt_at, SIGINT its process group (as
    Ctrl-C would) once that text appears in the output."""
    log = workdir.parent / f"{workdir.name}.log"
    state_file = workdir / "cluster.json"
    full_env = {**os.environ, "ERLDEPLOY_DEMO_DIR": str(workdir), **(env or {})}
    full_env.pop("COLUMNS", None)
    state: dict = {}
    t0 = time.monotonic()
    with open(log, "wb") as out:
        proc = subprocess.Popen([str(DEMO)], cwd=REPO, env=full_env, stdin=subprocess.DEVNULL,
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        interrupted = False
        try:
            while proc.poll() is None:
                if not state and state_file.exists():
                    try:
                        state = json.loads(state_file.read_text())
                    except ValueError:
                        pass        # caught mid-write: read it on the next turn
                if (interrupt_at and not interrupted and state
                        and interrupt_at in log.read_text(errors="replace")):
                    os.killpg(proc.pid, signal.SIGINT)
                    interrupted = True
                if time.monotonic() - t0 > timeout:
                    raise AssertionError(f"scripts/demo still running after {timeout:g}s")
                time.sleep(0.02)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
            if state_file.exists():     # never leave a cluster behind, even when the test fails
                Cluster.load(workdir).stop()
    return DemoRun(proc.returncode, log.read_text(errors="replace"), time.monotonic() - t0, workdir, state)


def assert_nothing_left(run: DemoRun) -> None:
    assert run.state, f"the demo never recorded a cluster:\n{run.out[-2000:]}"
    assert not (run.workdir / "cluster.json").exists(), "the cluster was not stopped (state file left)"
    for node, pid in zip(run.state["nodes"], run.state["pids"]):
        assert f" {node} " not in _cmdline(pid), f"{node} (pid {pid}) still running"
    epmd = run.state["epmd_pid"]
    assert f"epmd -port {run.state['epmd_port']} " not in _cmdline(epmd), f"epmd (pid {epmd}) still running"
    assert _processes_mentioning(str(run.workdir)) == []


def node_lines(out: str, term: str) -> list[str]:
    return [line for line in out.splitlines() if line in {f"{n}: {term}" for n in NODES}]


def test_demo_upgrades_and_rolls_back_with_state_kept_and_leaves_nothing(tmp_path: Path) -> None:
    run = run_demo(tmp_path / "demo")
    assert run.rc == 0, run.out[-3000:]
    out = run.out
    assert_nothing_left(run)
    assert run.seconds < 60, f"the demo took {run.seconds:.1f}s"

    # the story, in order: 0.0.1 with 3 bumps, 0.0.2 with the count kept, back to 0.0.1
    assert "install of 0.0.2 done" in out
    assert "rollback to 0.0.1 done" in out
    assert len(node_lines(out, '"0.0.2"')) == 3, "demo_server:version() after install"
    assert len(node_lines(out, '"0.0.1"')) == 3, "demo_server:version() after rollback"
    assert len(node_lines(out, "3")) >= 3 * 4, "bumped to 3, and count 3 before, after install, after rollback"
    upgraded = out.index("install of 0.0.2 done")
    assert out.index('#{count => 3', upgraded) < out.index("rollback to 0.0.1 done"), "the state as a map on 0.0.2"
    assert out.count("cluster on one release: demo 0.0.1 (permanent) on 3 nodes") == 2, "status before and after"

    cookie = (run.workdir / ".erlang.cookie").read_text().strip()
    assert cookie and cookie not in out, "the cookie was printed"


def test_demo_exits_nonzero_and_stops_the_cluster_when_a_step_fails(tmp_path: Path) -> None:
    # An erldeploy whose install fails, the way a real failure would: one line, exit 1.
    fake = tmp_path / "erldeploy"
    fake.write_text(f"""#!/usr/bin/env bash
if [ "$1" = install ]; then echo "erldeploy: error: injected failure" >&2; exit 1; fi
exec {REPO / '.venv' / 'bin' / 'erldeploy'} "$@"
""")
    fake.chmod(0o755)
    run = run_demo(tmp_path / "demo", env={"ERLDEPLOY_BIN": str(fake)})
    assert run.rc != 0, run.out[-3000:]
    assert "injected failure" in run.out
    assert "erldeploy install exited with 1" in run.out
    assert "==> 5." not in run.out, "the demo went on after the failed step"
    assert "Stopping the demo cluster" in run.out
    assert_nothing_left(run)


def test_ctrl_c_during_the_upgrade_stops_the_cluster(tmp_path: Path) -> None:
    run = run_demo(tmp_path / "demo", interrupt_at="$ erldeploy install")
    assert run.rc == 130, run.out[-3000:]
    assert "interrupted" in run.out
    assert_nothing_left(run)


def test_demo_script_is_executable_bash() -> None:
    path = DEMO
    assert os.access(path, os.X_OK)
    subprocess.run(["bash", "-n", str(path)], check=True)
