#!/usr/bin/env python3
"""Codec speed against the erlang-py codec (pip install erlang-py; bench only).

Both codecs decode the same bytes, produced by a real node's term_to_binary, and
encode their own decoded form of it. Prints one row per case; ``run()`` returns
the rows as dicts {name, ours_s, theirs_s, ratio} (ratio = theirs / ours, so
higher is better for us).

    python scripts/bench_codec.py
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from pyrlang_deploy.term import decode, encode  # noqa: E402

# Erlang expressions whose term_to_binary is benchmarked.
CASES = {
    "code:all_loaded()": "code:all_loaded()",
    "100k [{I, <<\"bin\">>, atom, 1.5}]": '[{I, <<"bin">>, atom, 1.5} || I <- lists:seq(1, 100000)]',
}


def node_terms() -> dict[str, bytes]:
    """Ask one `erl -noshell` for term_to_binary of every case (via a temp file)."""
    with tempfile.TemporaryDirectory(prefix="bench_codec_") as tmp:
        paths = {name: os.path.join(tmp, f"{i}.bin") for i, name in enumerate(CASES)}
        writes = ", ".join(
            f'ok = file:write_file("{paths[name]}", term_to_binary({expr}))'
            for name, expr in CASES.items()
        )
        subprocess.run(
            ["erl", "-noshell", "-noinput", "-eval", f"{writes}, halt()."],
            check=True,
            timeout=120,
            stdin=subprocess.DEVNULL,
        )
        result = {}
        for name, path in paths.items():
            with open(path, "rb") as f:
                result[name] = f.read()
        return result


def _per_call(fn: Callable[[], Any], loops: int) -> float:
    start = time.perf_counter()
    for _ in range(loops):
        fn()
    return (time.perf_counter() - start) / loops


def compare(ours: Callable[[], Any], theirs: Callable[[], Any], repeat: int = 7) -> tuple[float, float]:
    """Best per-call times of both, measured in alternation so that load from
    other processes on the machine hits both sides alike. GC stays on, as in use."""
    ours()  # warm caches (atoms, imports)
    theirs()
    loops = 1
    while _per_call(ours, loops) * loops < 0.02:
        loops *= 2
    best_ours = best_theirs = float("inf")
    for _ in range(repeat):
        best_ours = min(best_ours, _per_call(ours, loops))
        best_theirs = min(best_theirs, _per_call(theirs, loops))
    return best_ours, best_theirs


def run() -> list[dict]:
    import erlang  # erlang-py, bench-only dependency

    rows = []
    for name, data in node_terms().items():
        ours_term, _ = decode(data)
        theirs_term = erlang.binary_to_term(data)
        for op, ours, theirs in (
            # the lambdas run inside this iteration (compare below), so the late binding is fine
            ("decode", lambda: decode(data), lambda: erlang.binary_to_term(data)),  # noqa: B023
            ("encode", lambda: encode(ours_term), lambda: erlang.term_to_binary(theirs_term)),  # noqa: B023
        ):
            ours_s, theirs_s = compare(ours, theirs)
            rows.append(
                {
                    "name": f"{op} {name} ({len(data)} bytes)",
                    "ours_s": ours_s,
                    "theirs_s": theirs_s,
                    "ratio": theirs_s / ours_s,
                }
            )
    return rows


def main() -> None:
    rows = run()
    width = max(len(r["name"]) for r in rows)
    print(f"{'case':<{width}}  {'ours':>10}  {'erlang-py':>10}  {'ratio':>6}")
    for r in rows:
        print(
            f"{r['name']:<{width}}  {r['ours_s'] * 1e3:>8.2f}ms  {r['theirs_s'] * 1e3:>8.2f}ms  "
            f"{r['ratio']:>5.1f}x"
        )


if __name__ == "__main__":
    main()
