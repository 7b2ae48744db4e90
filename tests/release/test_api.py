"""The README's Python API example runs as written against a real cluster."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from .conftest import releases_of

REPO = Path(__file__).resolve().parents[2]


def test_readme_python_example_runs(demo, demo_build):
    readme = (REPO / "README.md").read_text()
    block = re.search(r"## Python API\n\n```python\n(.*?)```", readme, re.S).group(1)
    code = (block.replace("demo1@127.0.0.1", demo.nodes[0])
                 .replace('"secret"', repr(demo.cookie))
                 .replace("build/demo/tars/demo-0.0.2.tar.gz", str(demo_build.tars["0.0.2"])))
    env = dict(os.environ, ERL_EPMD_PORT=str(demo.epmd_port))
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert p.returncode == 0, p.stderr
    assert demo.nodes[1] in p.stdout and "25" in p.stdout and "True" in p.stdout
    for n in demo.nodes:     # installed, then rolled back: 0.0.1 permanent again
        assert releases_of(demo, n)["0.0.1"] == "permanent"
