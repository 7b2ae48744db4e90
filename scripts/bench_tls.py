#!/usr/bin/env python3
"""Distribution over TLS: our hidden node beside a native Erlang hidden node, both over
``-proto_dist inet_tls`` to the same TLS target node, in the same run (bench_dist's
slices and figures: sequential RPC, 64 in flight, a 64 MiB binary).

Certificates are made for the run with `openssl` (tests/support/tls.py); the target
verifies both clients' certificates. The native client skips the host-name check of
the target's certificate (OTP 25's client does not match an IP host against IP SANs);
ours does it. Importable as ``run(slices=..., bin_size=...) -> rows``.
"""

from __future__ import annotations

import json
import secrets
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

import bench_dist  # noqa: E402

from pyrlang_deploy.erldist import tls  # noqa: E402
from pyrlang_deploy.erldist.carrier import Reach  # noqa: E402
from tests.support.nodes import Epmd, ErlNode  # noqa: E402
from tests.support.tls import Pki, tls_args  # noqa: E402


def run(slices: int = bench_dist.SLICES, bin_size: int = bench_dist.BIN_SIZE) -> list[dict]:
    cookie = "bench" + secrets.token_hex(6)
    with tempfile.TemporaryDirectory() as d:
        pki = Pki.make(Path(d))
        optfile = pki.optfile(Path(d) / "dist.conf")
        native_opt = pki.optfile(Path(d) / "native.conf", client_verify=False)
        with Epmd() as epmd:
            target = ErlNode(epmd, cookie=cookie, long=True, args=tls_args(optfile))
            target.start()
            try:
                return bench_dist.run(epmd.port, target.node, cookie, slices=slices, bin_size=bin_size,
                                      reach=Reach(tls=tls.from_optfile(str(optfile))),
                                      native_flags=" ".join(tls_args(native_opt)))
            finally:
                target.kill()


if __name__ == "__main__":
    rows = run()
    if "--json" in sys.argv:
        print(json.dumps(rows, indent=2))
    else:
        for r in rows:
            print(f"{r['name']:<13} ours {r['ours']:>9.0f}  native {r['native']:>9.0f}  {r['ratio']:5.2f}x "
                  f"(target {r['target']:g}x)  median {r['ours_median']:.0f}/{r['native_median']:.0f} {r['unit']}")
