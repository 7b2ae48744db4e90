"""CLI input that can never work is a usage error (exit 2) with one clear line,
before anything connects (issue 10)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

CLI = [sys.executable, "-m", "pyrlang_deploy.cli.main"]


def run(*args: str) -> subprocess.CompletedProcess:
    # epmd on a port nobody listens on: reaching it would be exit 3, not 2
    env = {**os.environ, "ERLDEPLOY_COOKIE": "x", "ERL_EPMD_PORT": "9", "HOME": "/nonexistent"}
    p = subprocess.run([*CLI, *args], capture_output=True, text=True, env=env, timeout=60)
    assert "Traceback" not in p.stderr, p.stderr
    return p


@pytest.mark.parametrize("value", ["0", "-1", "nan", "inf", "-0.0"])
def test_a_timeout_that_is_not_positive_is_a_usage_error(value):
    p = run("rpc", "-n", "a@127.0.0.1", "--timeout", value, "erlang", "node")
    assert p.returncode == 2, p.stderr
    assert p.stderr.strip().splitlines() == [
        f"erldeploy: error: --timeout must be a positive number of seconds, not {float(value)}"]


def test_a_node_name_epmd_cannot_know_is_a_usage_error():
    alive = "é" * 130  # 260 bytes before the @, 140 characters in all
    p = run("rpc", "-n", f"{alive}@127.0.0.1", "erlang", "node")
    assert p.returncode == 2, p.stderr
    [line] = p.stderr.strip().splitlines()
    assert "has 260 bytes before the @; epmd allows at most 255" in line and "PORT2" not in line


def test_a_node_name_longer_than_an_atom_is_a_usage_error():
    p = run("rpc", "-n", "a" * 300 + "@127.0.0.1", "erlang", "node")
    assert p.returncode == 2, p.stderr
    [line] = p.stderr.strip().splitlines()
    assert "is 310 characters long; a node name is an atom of at most 255" in line


@pytest.mark.parametrize("args", [["install", "0.0.2", "--tar", "/nonexistent/x.tar.gz"],
                                  ["upload", "/nonexistent/x.tar.gz"]])
def test_a_missing_tarball_is_a_usage_error(args):
    p = run(*args, "-n", "a@127.0.0.1")
    assert p.returncode == 2, p.stderr
    assert "/nonexistent/x.tar.gz" in p.stderr and "does not exist" in p.stderr
