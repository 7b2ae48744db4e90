"""Bad moments on a real three-node cluster (issue 10): a paused controller across the
lease, a node killed mid-install, two installs at once, a SIGKILLed controller.

Whatever happens, the nodes must end on one release, read back with erl_call (one
erl_call on the first node asks every node over the cluster's own distribution).
"""

from __future__ import annotations

import os
import random
import re
import signal
import subprocess
import sys
import threading
import time

from .conftest import releases_of, server_of

# {Node, [{Vsn, State}], GuardRegistered} for every node of the cluster
STATE_EXPR = ("[{N, [{V, S} || {_, V, _, S} <- rpc:call(N, release_handler, which_releases, [])], "
              "rpc:call(N, erlang, whereis, [erldeploy_guard]) =/= undefined} || N <- lists:sort([node() | nodes()])]")


def cluster_state(demo) -> dict[str, tuple[dict[str, str], bool]]:
    text = demo.eval(demo.nodes[0], STATE_EXPR)
    out = {}
    for node, rels, guard in re.findall(r"\{'([^']+)',\[(.*?)\],(true|false)\}", text):
        out[node] = ({v: s for v, s in re.findall(r'\{"([^"]+)",(\w+)\}', rels)}, guard == "true")
    return out


def runs(rels: dict[str, str]) -> tuple[str | None, str | None]:
    """(what the node runs, its permanent release)."""
    perm = next((v for v, s in rels.items() if s == "permanent"), None)
    cur = next((v for v, s in rels.items() if s == "current"), perm)
    return cur, perm


def settled_state(demo, timeout: float = 20.0) -> dict[str, tuple[str | None, str | None]]:
    """The cluster once no guard is left deciding: node -> (runs, permanent)."""
    deadline = time.monotonic() + timeout
    while True:
        st = cluster_state(demo)
        if len(st) == len(demo.nodes) and not any(g for _, g in st.values()):
            return {n: runs(r) for n, (r, _) in st.items()}
        assert time.monotonic() < deadline, f"guards still active: {st}"
        time.sleep(0.1)


def assert_one_release(state: dict[str, tuple[str | None, str | None]]) -> str:
    versions = {v for pair in state.values() for v in pair}
    assert len(versions) == 1, f"split cluster: {state}"
    return versions.pop()


class Run:
    """An erldeploy command in its own process; its stderr (progress) read line by line."""

    def __init__(self, cli, *args: str):
        env = cli.env()
        env["PYTHONUNBUFFERED"] = "1"
        cmd = [sys.executable, "-m", "pyrlang_deploy.cli.main", *args, "-n", cli.cluster.nodes[0]]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        self.lines: list[str] = []
        self.out = ""
        self._seen = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.proc.stderr:
            with self._seen:
                self.lines.append(line)
                self._seen.notify_all()

    def wait_for(self, *needles: str, timeout: float = 60.0) -> bool:
        deadline = time.monotonic() + timeout
        with self._seen:
            while not any(all(n in line for n in needles) for line in self.lines):
                left = deadline - time.monotonic()
                if left <= 0 or self.proc.poll() is not None:
                    return False
                self._seen.wait(min(left, 0.05))
        return True

    def finish(self, timeout: float = 120.0) -> int:
        self.out = self.proc.stdout.read()
        rc = self.proc.wait(timeout)
        self._reader.join(5)
        err = "".join(self.lines)
        assert "Traceback" not in err, err
        return rc

    @property
    def err(self) -> str:
        return "".join(self.lines)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


def test_paused_controller_never_splits_the_cluster(cli, demo, demo_build):
    """20 runs, each paused (SIGSTOP ... SIGCONT) at a random moment around the canary's lease
    expiry and the commit: every run ends with all three nodes on one release."""
    rng = random.Random(int(os.environ.get("ERLDEPLOY_FAULT_SEED", "0")) or None)
    tar = str(demo_build.tars["0.0.2"])
    outcomes = {"committed": 0, "rolled back": 0}
    t0 = time.monotonic()
    for i in range(20):
        on = assert_one_release(settled_state(demo))
        target = "0.0.1" if on == "0.0.2" else "0.0.2"
        cmd = ("rollback", "0.0.1") if target == "0.0.1" else ("install", "0.0.2", "--tar", tar)
        # canary, then nodes 2+3: the canary's lease runs while they install and verify
        run = Run(cli, *cmd, "--cluster", "--strategy", "canary", "--batch", "2", "--lease", "1",
                  "--verify", "timer:sleep(400)")
        try:
            assert run.wait_for(demo.nodes[1], "install", "->"), run.err
            time.sleep(rng.uniform(0.0, 0.8))
            run.proc.send_signal(signal.SIGSTOP)
            time.sleep(rng.uniform(0.2, 2.2))
            run.proc.send_signal(signal.SIGCONT)
            rc = run.finish()
        finally:
            run.proc.send_signal(signal.SIGCONT) if run.proc.poll() is None else None
            run.kill()
        assert rc in (0, 1), run.out + run.err
        state = settled_state(demo)
        ended = assert_one_release(state)
        if rc == 0:
            assert ended == target, (i, state, run.out)
        outcomes["committed" if ended == target else "rolled back"] += 1
    took = time.monotonic() - t0
    print(f"20 paused runs in {took:.0f} s: {outcomes}")
    # the pauses were placed so that both endings happen
    assert outcomes["committed"] and outcomes["rolled back"], outcomes


def test_node_killed_after_the_canary_verified_still_reports(cli, demo, demo_build):
    """The canary dies while the others install: every node is named in the report, exit 1,
    and the survivors are back on the old release."""
    canary = demo.nodes[0]
    run = Run(cli, "install", "0.0.2", "--tar", str(demo_build.tars["0.0.2"]), "--cluster",
              "--strategy", "canary", "--batch", "2", "--lease", "3", "--verify", "timer:sleep(1500)")
    try:
        assert run.wait_for(demo.nodes[1], "install", "->"), run.err
        demo.kill_node(canary)
        rc = run.finish()
    finally:
        run.kill()
    assert rc == 1, run.out + run.err
    for n in demo.nodes:
        assert n in run.out
    assert "failed" in run.err.splitlines()[-1] or "failed" in run.out
    for n in demo.nodes[1:]:
        assert server_of(demo, n)[0] == "0.0.1"
        assert releases_of(demo, n)["0.0.1"] == "permanent"


# Answers gen_server:call(erldeploy_test_blocker, _, _) only once told `release`, then at once.
BLOCKER = ("B = spawn(fun() -> Open = fun O() -> receive {'$gen_call', F, _} -> gen:reply(F, ok), O() end end, "
           "Wait = fun W(Q) -> receive {'$gen_call', F, _} -> W([F | Q]); "
           "release -> [gen:reply(F, ok) || F <- Q], Open() end end, Wait([]) end), "
           "register(erldeploy_test_blocker, B), ok")


def test_two_installs_at_once_the_second_is_refused(cli, demo, demo_build):
    """The first run is --no-agent (no code on the nodes), the second uses the agent: one lock.
    The first run's health check blocks until the test releases it (a gen_server-style call)."""
    for n in demo.nodes:
        demo.eval(n, BLOCKER)
    first = Run(cli, "install", "0.0.2", "--tar", str(demo_build.tars["0.0.2"]), "--cluster", "--no-agent",
                "--verify", "gen_server:call(erldeploy_test_blocker, go, infinity)")
    try:
        assert first.wait_for("install", "->"), first.err
        p = cli("install", "0.0.3", "--tar", str(demo_build.tars["0.0.3"]), "--cluster")
        assert p.returncode == 1, p.stdout + p.stderr
        line = p.stderr.strip().splitlines()[-1]
        assert "deploy lock is held by" in line and f"pid {first.proc.pid}" in line, line
        assert "install 0.0.2" in line and "nothing was changed" in line, line
        for other in (("rollback", "0.0.1"), ("permanent", "0.0.1"), ("remove", "0.0.3"),
                      ("upload", str(demo_build.tars["0.0.3"]))):
            p = cli(*other, "--cluster")
            assert p.returncode == 1 and "deploy lock is held by" in p.stderr, (other, p.stdout + p.stderr)
        st = cli("lock", "status", "--cluster")          # who, from where, doing what
        assert st.returncode == 0 and f"pid {first.proc.pid}" in st.stdout, st.stdout + st.stderr
        code, doc = cli.json("lock", "status", "--cluster")
        holders = [n["holder"] for n in doc["nodes"]]
        assert code == 0 and doc["held"] and len(holders) == 3, doc
        assert all(h["pid"] == first.proc.pid and h["doing"] == "install 0.0.2" and not h["known_dead"]
                   for h in holders), doc
        p = cli("lock", "break", "--cluster", "--yes")   # a live holder's lock is never broken
        assert p.returncode == 1 and "not known to be dead" in p.stderr, p.stdout + p.stderr
        s = cli("status", "--cluster")                   # status works during an install
        assert "lock" not in s.stderr, s.stderr
        for n in demo.nodes:
            demo.eval(n, "erldeploy_test_blocker ! release, ok")
        assert first.finish() == 0, first.out + first.err
    finally:
        first.kill()
    for n in demo.nodes:
        assert releases_of(demo, n) == {"0.0.2": "permanent", "0.0.1": "old"}
        assert not (demo.root_of(n) / "releases" / demo_build.tars["0.0.3"].name).exists()   # no upload
    assert "free" in cli("lock", "status", "--cluster").stdout


def test_sigkilled_controller_leaves_no_stale_lock(cli, demo, demo_build):
    """SIGKILL mid-install (agent): the lock goes with the controller, the guards roll back,
    and the next install runs to the end."""
    tar = str(demo_build.tars["0.0.2"])
    run = Run(cli, "install", "0.0.2", "--tar", tar, "--cluster", "--strategy", "all", "--lease", "2",
              "--verify", "timer:sleep(1500)")
    try:
        assert run.wait_for("install", "->"), run.err
        time.sleep(0.3)
        run.proc.send_signal(signal.SIGKILL)
        run.proc.wait(10)
    finally:
        run.kill()
    p = cli("install", "0.0.2", "--tar", tar, "--cluster")
    assert p.returncode == 0, p.stdout + p.stderr
    for n in demo.nodes:
        assert releases_of(demo, n)["0.0.2"] == "permanent"
        assert server_of(demo, n)[0] == "0.0.2"


def test_lock_break_frees_a_lock_whose_holder_is_dead(cli, demo):
    """A lock left by a controller that is gone on this host (its lock process kept alive by
    hand, as a hung connection would): `lock break` asks, then frees it."""
    victim = subprocess.Popen([sys.executable, "-c", "pass"])
    victim.wait()
    info = (f'#{{user => <<"someone">>, host => list_to_binary(element(2, inet:gethostname())), '
            f'os_pid => {victim.pid}, since => <<"2026-01-01T00:00:00Z">>, doing => <<"install 9.9.9">>, '
            f'controller => <<"gone@nowhere">>, owner => self()}}')
    demo.eval(demo.nodes[0], f"P = spawn(fun() -> put('$erldeploy_lock', {info}), "
                             "receive stop -> ok end end), register(erldeploy_lock, P), ok")
    p = cli("install", "0.0.2", "--cluster")
    assert p.returncode == 1 and f"pid {victim.pid}" in p.stderr and "install 9.9.9" in p.stderr, p.stderr
    st = cli("lock", "status", "--cluster")
    assert "known dead" in st.stdout, st.stdout
    p = subprocess.run([sys.executable, "-m", "pyrlang_deploy.cli.main", "lock", "break", "--cluster",
                        "-n", demo.nodes[0]], input="n\n", capture_output=True, text=True, env=cli.env())
    assert p.returncode == 1 and "not broken" in p.stderr, p.stdout + p.stderr
    assert demo.eval(demo.nodes[0], "whereis(erldeploy_lock) =/= undefined") == "true"
    p = cli("lock", "break", "--cluster", "--yes")
    assert p.returncode == 0 and "broken" in p.stdout, p.stdout + p.stderr
    assert demo.eval(demo.nodes[0], "whereis(erldeploy_lock)") == "undefined"


def test_status_flags_expected_members_that_are_missing(cli, demo, tmp_path):
    assert cli("status", "--cluster").returncode == 0
    code, doc = cli.json("status", "--cluster", "--expect", "4")
    assert code == 1 and any("expected 4 members (--expect), found 3" in p for p in doc["problems"]), doc
    gone = demo.nodes[2]
    demo.kill_node(gone)
    p = cli("status", "--cluster")          # discovery alone sees two healthy nodes
    assert p.returncode == 1, p.stdout + p.stderr
    assert f"{gone}: was connected to" in p.stdout + p.stderr, p.stdout + p.stderr
    cfg = tmp_path / "erldeploy.toml"
    cfg.write_text(f'default_env = "t"\n[env.t]\nmembers = ["{demo.nodes[0]}", "{demo.nodes[1]}", "extra@127.0.0.1"]\n')
    env = {**cli.env(), "ERLDEPLOY_CONFIG": str(cfg)}
    p = subprocess.run([sys.executable, "-m", "pyrlang_deploy.cli.main", "status", "-n", demo.nodes[0], "--json"],
                       capture_output=True, text=True, env=env)
    assert p.returncode == 1, p.stdout + p.stderr
    import json
    doc = json.loads(p.stdout)
    assert any(m.startswith("extra@127.0.0.1: expected") for m in doc["missing"]), doc
