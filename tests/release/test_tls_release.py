"""Release management over TLS distribution: status, upload, install with the agent and
the REPL against demo-release nodes started with -proto_dist inet_tls. erl_call has no
TLS, so what the nodes report is read back by a plain Erlang hidden node over TLS."""

from __future__ import annotations

import glob
import os
import secrets
import subprocess
import sys
import time
from pathlib import Path

import demo_cluster
import pytest

from tests.release.test_shell import Term
from tests.support.nodes import Epmd
from tests.support.tls import Pki, tls_args

# the ssl application and what it needs, from the OTP installation whose erts the
# target system carries (the demo release itself ships kernel, stdlib, sasl only)
_SSL_APPS = ("ssl", "public_key", "crypto", "asn1")


def _ssl_paths() -> list[str]:
    root = subprocess.run(["erl", "-noshell", "-eval", 'io:format("~s", [code:lib_dir()]), halt().'],
                          capture_output=True, text=True, check=True).stdout
    paths = [sorted(glob.glob(f"{root}/{app}-*/ebin"))[-1] for app in _SSL_APPS]
    return [a for p in paths for a in ("-pa", p)]


class TlsDemo:
    def __init__(self, build, workdir: Path) -> None:
        self.workdir = workdir
        self.pki = Pki.make(workdir)
        self.optfile = self.pki.optfile(workdir / "dist.conf")
        # the probe: OTP 25's own client does not match an IP host against the
        # certificate's IP SANs, so it skips that check (the node still verifies it)
        self.probe_optfile = self.pki.optfile(workdir / "probe.conf", client_verify=False)
        self.cookie = secrets.token_hex(12)
        (workdir / ".erlang.cookie").write_text(self.cookie)
        (workdir / ".erlang.cookie").chmod(0o400)
        self.epmd = Epmd().start()
        self.node = f"tls{os.getpid()}{secrets.token_hex(2)}@127.0.0.1"
        self.root = workdir / "n1"
        demo_cluster.copy_target(build.target, self.root)
        env = demo_cluster.node_env(workdir, self.epmd.port)
        env["ERL_FLAGS"] = " ".join(tls_args(self.optfile) + _ssl_paths())
        self.proc = demo_cluster.start_node(self.root, self.node, [], "long", env)
        try:
            deadline = time.monotonic() + 30
            while self.node.split("@")[0] not in self.epmd.names():
                assert self.proc.poll() is None and time.monotonic() < deadline, \
                    (self.root / "log" / "node.log").read_text()[-2000:]
                time.sleep(0.05)
            self.wait_started()
        except BaseException:
            self.stop()
            raise

    def probe(self, expr: str) -> str:
        """``expr`` evaluated on the node by a hidden `erl` over TLS, printed with ~0tp."""
        code = (f"R = rpc:call('{self.node}', erl_eval, exprs, "
                f"[begin {{ok, T, _}} = erl_scan:string(\"{expr}.\"), {{ok, E}} = erl_parse:parse_exprs(T), E end, []]), "
                "case R of {value, V, _} -> io:format(\"~0tp\", [V]); _ -> io:format(\"ERROR ~0tp\", [R]) end, "
                "halt().")
        p = subprocess.run(["erl", "-noshell", "-hidden", "-name", f"probe{secrets.token_hex(3)}@127.0.0.1",
                            "-setcookie", self.cookie, *tls_args(self.probe_optfile), *_ssl_paths(), "-eval", code],
                           capture_output=True, text=True, timeout=60,
                           env={**os.environ, "ERL_EPMD_PORT": str(self.epmd.port)})
        assert p.returncode == 0, p.stderr
        return p.stdout

    def wait_started(self) -> None:
        deadline = time.monotonic() + 30
        while "{started,started}" not in self.probe("init:get_status()"):
            assert time.monotonic() < deadline
            time.sleep(0.2)

    def cli(self, *args: str, timeout: float = 180) -> subprocess.CompletedProcess:
        p = subprocess.run([sys.executable, "-m", "pyrlang_deploy.cli.main", *args, "-n", self.node],
                           capture_output=True, text=True, env=self.env(), timeout=timeout)
        assert "Traceback" not in p.stderr and self.cookie not in p.stdout + p.stderr
        return p

    def env(self) -> dict[str, str]:
        e = {k: v for k, v in os.environ.items() if not k.startswith("ERLDEPLOY_")}
        e.update(ERLDEPLOY_COOKIE=self.cookie, ERL_EPMD_PORT=str(self.epmd.port), HOME=str(self.workdir),
                 ERLDEPLOY_SSL_DIST_OPTFILE=str(self.optfile), COLUMNS="200")
        return e

    def stop(self) -> None:
        demo_cluster.kill_proc(self.proc)
        self.epmd.stop()
        demo_cluster.reap_helpers(self.workdir)


@pytest.fixture
def tls_demo(demo_build, tmp_path):
    d = TlsDemo(demo_build, tmp_path)
    try:
        yield d
    finally:
        d.stop()


def test_status_upload_install_over_tls(tls_demo, demo_build):
    d = tls_demo
    p = d.cli("status", "--json")
    assert p.returncode == 0, p.stderr
    assert '"current": "0.0.1"' in p.stdout and '"reachable": true' in p.stdout

    tar = demo_build.tars["0.0.2"]
    p = d.cli("upload", str(tar))
    assert p.returncode == 0, p.stderr
    landed = d.root / "releases" / tar.name
    assert landed.read_bytes() == tar.read_bytes()

    p = d.cli("install", "0.0.2", "--tar", str(tar))  # the agent (default) guards it
    assert p.returncode == 0, p.stdout + p.stderr
    releases = d.probe("[{V, S} || {_, V, _, S} <- release_handler:which_releases()]")
    assert '{"0.0.2",permanent}' in releases and '{"0.0.1",old}' in releases
    assert d.probe("demo_server:version()") == '"0.0.2"'
    assert d.probe("[M || M <- erlang:loaded(), lists:prefix(\\\"erldeploy_\\\", atom_to_list(M))]") == "[]"


def test_shell_over_tls(tls_demo, tmp_path):
    d = tls_demo
    env = {**d.env(), "TERM": "xterm", "COLUMNS": "120", "ERLDEPLOY_HISTORY": str(tmp_path / "history")}
    t = Term([sys.executable, "-m", "pyrlang_deploy.cli.main", "shell", "-n", d.node], env)
    try:
        t.read_until(">>> ")
        t.type(f'await rpc("{d.node}", "lists", "seq", [1, 3])')
        assert "[1,2,3]" in t.read_until(">>> ")
        t.type(f'await erl("{d.node}", "io:format(\\"over tls ~p~n\\", [x]), node().")')
        seen = t.read_until(">>> ")
        assert "over tls x" in seen and d.node in seen
        t.type("exit()")
    finally:
        t.close()
