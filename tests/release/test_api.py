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


async def test_api_upload_permanent_and_remove_take_the_deploy_lock(demo, demo_build):
    """Through the API as through the CLI (issue 10): refused while another run holds
    the lock, nothing changed; free again once they are done (read with erl_call)."""
    import pytest

    from pyrlang_deploy.cluster import Cluster
    from pyrlang_deploy.release.lock import LockHeld, deploy_lock

    tar = str(demo_build.tars["0.0.2"])
    kw = {"cookie": demo.cookie, "epmd_port": demo.epmd_port, "discover": True}
    async with Cluster([demo.nodes[0]], **kw) as holder, Cluster([demo.nodes[0]], **kw) as other:
        async with deploy_lock(holder, "install 9.9.9"):
            for attempt in (other.upload(tar), other.permanent("0.0.1"), other.remove("0.0.1")):
                with pytest.raises(LockHeld, match="install 9.9.9"):
                    await attempt
            for n in demo.nodes:    # nothing was staged while refused
                assert not list((demo.root_of(n) / "releases").glob("*.tar.gz*"))
        res = await other.permanent("0.0.1")
        assert all(r.ok and r.value == "0.0.1 already permanent" for r in res.values()), res
        res = await other.upload(tar)
        assert all(r.ok for r in res.values()), res
    for n in demo.nodes:
        assert (demo.root_of(n) / "releases" / "demo-0.0.2.tar.gz").is_file()
        assert demo.eval(n, "whereis(erldeploy_lock)") == "undefined"
