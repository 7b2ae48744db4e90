"""Fixtures for `erldeploy relup`: the systools fixture without appup/relup (built once per
session) and the real `erldeploy` command as a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "scripts"))


@pytest.fixture(scope="session")
def sys_build(tmp_path_factory):
    from tests.relupgen.sysfix import build

    return build(tmp_path_factory.mktemp("relup-systools"))


def erldeploy(*args: str, env: dict[str, str] | None = None, timeout: float = 300,
              cwd: Path | None = None) -> subprocess.CompletedProcess:
    """The real command line in a separate process; never a traceback."""
    e = {k: v for k, v in os.environ.items() if not k.startswith("ERLDEPLOY_")}
    e["COLUMNS"] = "200"
    e.update(env or {})
    p = subprocess.run([sys.executable, "-m", "pyrlang_deploy.cli.main", *args], check=False, capture_output=True,
                       text=True, env=e, timeout=timeout, cwd=cwd)
    assert "Traceback" not in p.stderr, p.stderr
    return p


def cluster_env(cluster) -> dict[str, str]:
    return {"ERLDEPLOY_COOKIE": cluster.cookie, "ERL_EPMD_PORT": str(cluster.epmd_port),
            "HOME": str(cluster.workdir)}
