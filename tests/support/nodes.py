"""Real OTP processes for tests: a private epmd and Erlang nodes.

Every process is started as our child in its own session and killed by its pid
(never by name), so parallel test runs of other engineers are never touched.
Nothing here uses the default epmd port 4369.
"""

from __future__ import annotations

import itertools
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

_counter = itertools.count(1)

# The demo cluster's stdlib-only helpers (free port, epmd, killing a process group).
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))
import demo_cluster as _cluster  # noqa: E402

free_port = _cluster.free_port


def require(tool: str) -> str:
    """Path of an OTP executable; a missing Erlang is a failure, never a skip."""
    path = shutil.which(tool)
    if path is None:
        raise RuntimeError(f"{tool} not found on PATH: install Erlang/OTP (Debian: erlang-nox erlang-dev)")
    return path


def erl_program() -> str:
    """The ``erl`` the tests start nodes with: ERLDEPLOY_TEST_ERL (e.g. the OTP 28 runtime
    of scripts/otp28) or the one on PATH."""
    return os.environ.get("ERLDEPLOY_TEST_ERL") or require("erl")


def unique_name(prefix: str = "t") -> str:
    return f"{prefix}{os.getpid()}_{next(_counter)}_{secrets.token_hex(2)}"


def epmd_names(port: int) -> list[str] | None:
    """Names registered with the epmd on ``port``; None if it does not answer."""
    try:
        return list(_cluster.epmd_names(port))
    except OSError:
        return None


class Epmd:
    """``epmd -port P`` in the foreground, as our child."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.proc: subprocess.Popen | None = None

    def start(self) -> Epmd:
        require("epmd")
        try:
            self.proc = _cluster.start_epmd(self.port, Path(os.devnull))
        except _cluster.ClusterError as e:
            raise RuntimeError(str(e)) from None
        return self

    def names(self) -> list[str]:
        return epmd_names(self.port) or []

    def stop(self) -> None:
        if self.proc is not None:
            _cluster.kill_proc(self.proc)

    def __enter__(self) -> Epmd:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class ErlNode:
    """An ``erl -noshell`` node registered with a given epmd.

    ``long=True`` uses ``-name NAME@127.0.0.1``; False uses ``-sname NAME``; ``host``
    overrides the long name's host (``::1`` for inet6 nodes). ``listen_port``: an
    epmd-less node (``-start_epmd false``); start() waits for that port instead of epmd.
    """

    def __init__(self, epmd: Epmd, name: str | None = None, *, cookie: str | None = None,
                 long: bool = True, net_ticktime: int | None = None, hidden: bool = False,
                 args: list[str] | tuple[str, ...] = (), code_path: list[str | Path] = (),
                 host: str | None = None, listen_port: int | None = None,
                 env: dict[str, str] | None = None) -> None:
        self.epmd = epmd
        self.alive = name or unique_name()
        self.cookie = cookie or "c" + secrets.token_hex(8)
        self.long = long
        self.host = host or ("127.0.0.1" if long else socket.gethostname().split(".")[0])
        self.listen_port = listen_port
        self.extra_env = dict(env or {})
        self.node = f"{self.alive}@{self.host}"
        self.net_ticktime = net_ticktime
        self.hidden = hidden
        self.args = list(args)
        self.code_path = [str(p) for p in code_path]
        self.proc: subprocess.Popen | None = None
        self.log_path: Path | None = None

    def command(self) -> list[str]:
        cmd = [erl_program(), "-noshell", "-noinput",
               "-name" if self.long else "-sname", self.node if self.long else self.alive,
               "-setcookie", self.cookie]
        if self.net_ticktime is not None:
            cmd += ["-kernel", "net_ticktime", str(self.net_ticktime)]
        if self.hidden:
            cmd.append("-hidden")
        for p in self.code_path:
            cmd += ["-pa", p]
        return cmd + self.args

    def start(self, timeout: float = 30.0, log_dir: Path | None = None) -> ErlNode:
        out = subprocess.DEVNULL
        if log_dir is not None:
            self.log_path = Path(log_dir) / f"{self.alive}.log"
            out = open(self.log_path, "wb")
        env = {**os.environ, "ERL_EPMD_PORT": str(self.epmd.port)}
        env.pop("ERL_FLAGS", None)
        env.pop("ERL_AFLAGS", None)
        env.pop("ERL_ZFLAGS", None)
        env.update(self.extra_env)
        self.proc = subprocess.Popen(self.command(), stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                     start_new_session=True, env=env)
        if out is not subprocess.DEVNULL:
            out.close()
        deadline = time.monotonic() + timeout
        while not self._ready():
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.node} exited with {self.proc.returncode} before registering"
                                   + self._log_tail())
            if time.monotonic() > deadline:
                self.kill()
                raise RuntimeError(f"{self.node} did not register with epmd within {timeout}s" + self._log_tail())
            time.sleep(0.05)
        return self

    def _ready(self) -> bool:
        if self.listen_port is None:
            return self.alive in self.epmd.names()
        try:
            with socket.create_connection((self.host, self.listen_port), 0.5):
                return True
        except OSError:
            return False

    def _log_tail(self) -> str:
        if self.log_path and self.log_path.exists():
            return ": " + self.log_path.read_text(errors="replace")[-800:]
        return ""

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def alive_now(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL the node (no goodbye on the socket) and its helper processes."""
        if self.proc is not None:
            _cluster.kill_proc(self.proc)

    stop = kill

    def __enter__(self) -> ErlNode:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.kill()


async def erl_eval(local, node: str, src: str, bindings: dict | None = None, timeout: float = 10.0):
    """Evaluate Erlang expressions (``"X = 1, X + 1."``) on ``node``: the product's own
    remote evaluation, with ``bindings`` for pids, refs and other values."""
    from pyrlang_deploy.remote_eval import eval_erlang

    return await eval_erlang(local.rpc, node, src, bindings, timeout=timeout)
