#!/usr/bin/env python3
"""Distribution benchmark: our hidden node beside a native Erlang hidden node.

Each figure is measured in the same run against the same target node; the
native side is an escript started with ``-hidden`` (compiled mode) doing the
same work:

  rpc_seq       sequential RPC round trips per second (erlang:node/0)
  rpc_64        64 calls kept in flight (ours, node.rpc_future) vs native sequential calls/s
  rpc_64_tasks  the same with 64 worker coroutines each awaiting node.rpc in a loop
  bin_64mib     a 64 MiB binary sent to erlang:byte_size/1, MB/s

The machine is shared, so load comes and goes within seconds: both sides stay
connected for the whole run and take turns in short slices (native, ours,
native, ours, ...); each figure is the best slice of its side, and the median
slice is reported beside it.

Standalone (``python scripts/bench_dist.py``) it starts its own epmd on a free
port and a target node, and kills both at the end. Importable as
``run(epmd_port, node, cookie=None) -> list[dict]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pyrlang_deploy.erldist.node import LocalNode, read_cookie_file  # noqa: E402

SLICE_CALLS = 2000  # calls per sequential slice
INFLIGHT = 64
INFLIGHT_CALLS = 6400  # calls per in-flight slice
BIN_SIZE = 64 * 1024 * 1024
SLICES = 7  # turns per side and figure
BIN_SLICES = 3
TARGETS = {"rpc_seq": 1.0, "rpc_64": 3.0, "rpc_64_tasks": 3.0, "bin_64mib": 1.0}

# A native hidden node that measures on command: "seq N" or "bin Bytes" on stdin,
# one Erlang term per answer on stdout.
_ESCRIPT = r"""
%%! -hidden
-mode(compile).
main([Target, Cookie, Long]) ->
    Self = list_to_atom("bnat" ++ os:getpid() ++ "@" ++ host(Long)),
    {ok, _} = net_kernel:start([Self, case Long of "true" -> longnames; _ -> shortnames end]),
    erlang:set_cookie(node(), list_to_atom(Cookie)),
    T = list_to_atom(Target),
    true = connect(T, 5),
    _ = [rpc:call(T, erlang, node, []) || _ <- lists:seq(1, 500)],
    io:format("ready.~n"),
    loop(T, #{}).

loop(T, Bins) ->
    case io:get_line("") of
        "seq " ++ N ->
            Calls = list_to_integer(string:trim(N)),
            T0 = erlang:monotonic_time(nanosecond),
            seq(T, Calls),
            T1 = erlang:monotonic_time(nanosecond),
            io:format("~p.~n", [Calls * 1.0e9 / (T1 - T0)]),
            loop(T, Bins);
        "bin " ++ N ->
            Size = list_to_integer(string:trim(N)),
            Bin = case Bins of #{Size := B} -> B; _ -> binary:copy(<<7>>, Size) end,
            T0 = erlang:monotonic_time(nanosecond),
            Size = rpc:call(T, erlang, byte_size, [Bin]),
            T1 = erlang:monotonic_time(nanosecond),
            io:format("~p.~n", [Size / ((T1 - T0) / 1.0e9) / 1.0e6]),
            loop(T, Bins#{Size => Bin});
        _ -> ok
    end.

%% a loaded machine can outlast one connect's setup time (a TLS handshake, mostly)
connect(T, 1) -> net_kernel:connect_node(T);
connect(T, N) -> net_kernel:connect_node(T) orelse (timer:sleep(500) == ok andalso connect(T, N - 1)).

seq(_, 0) -> ok;
seq(T, N) -> T = rpc:call(T, erlang, node, []), seq(T, N - 1).

host("true") -> "127.0.0.1";
host(_) -> {ok, H} = inet:gethostname(), H.
"""


class Native:
    """The escript worker, connected to the target for the whole run."""

    def __init__(self, epmd_port: int, node: str, cookie: str, erl_flags: str = "") -> None:
        self._dir = tempfile.TemporaryDirectory()
        script = Path(self._dir.name) / "bench_native.escript"
        script.write_text(_ESCRIPT)
        long = "." in node.split("@", 1)[1]
        self.proc = subprocess.Popen(
            ["escript", str(script), node, cookie, "true" if long else "false"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env={**os.environ, "ERL_EPMD_PORT": str(epmd_port), "ERL_FLAGS": erl_flags}, start_new_session=True)
        line = self.proc.stdout.readline()
        if line.strip() != "ready.":
            self.close()
            raise RuntimeError(f"native escript did not start: {line!r} {self.proc.stderr.read()[-500:]}")

    def ask(self, command: str) -> float:
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline().strip()
        try:
            return float(line.rstrip("."))
        except ValueError:
            raise RuntimeError(f"native escript answered {line!r} to {command!r}") from None

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                self.proc.stdin.close()
                self.proc.wait(timeout=10)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()
        self._dir.cleanup()


async def _seq(local: LocalNode, node: str, calls: int) -> float:
    t0 = time.perf_counter()
    for _ in range(calls):
        await local.rpc(node, "erlang", "node", [])
    return calls / (time.perf_counter() - t0)


async def _window(local: LocalNode, node: str, total: int, width: int) -> float:
    """``width`` calls in flight all the time: each completion starts the next (no Task per call)."""
    loop = asyncio.get_running_loop()
    done = loop.create_future()
    count = [0, 0]  # started, finished

    def start() -> None:
        count[0] += 1
        local.rpc_future(node, "erlang", "node", []).add_done_callback(finished)

    def finished(f: asyncio.Future) -> None:
        count[1] += 1
        if f.exception() is not None:
            if not done.done():
                done.set_exception(f.exception())
        elif count[0] < total:
            start()
        elif count[1] == total and not done.done():
            done.set_result(None)

    t0 = time.perf_counter()
    for _ in range(width):
        start()
    await done
    return total / (time.perf_counter() - t0)


async def _workers(local: LocalNode, node: str, total: int, width: int) -> float:
    """``width`` coroutines each awaiting node.rpc in a loop."""
    left = [total]

    async def worker() -> None:
        while left[0] > 0:
            left[0] -= 1
            await local.rpc(node, "erlang", "node", [])

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(width)))
    return total / (time.perf_counter() - t0)


async def _bin(local: LocalNode, node: str, data: bytes) -> float:
    t0 = time.perf_counter()
    size = await local.rpc(node, "erlang", "byte_size", [data], timeout=120)
    dt = time.perf_counter() - t0
    assert size == len(data), size
    return len(data) / dt / 1e6


async def _measure(native: Native, epmd_port: int, node: str, cookie: str, slices: int,
                   bin_size: int, reach=None) -> dict[str, tuple[list[float], list[float]]]:
    out: dict[str, tuple[list[float], list[float]]] = {k: ([], []) for k in TARGETS}
    async with LocalNode(cookie=cookie, epmd_port=epmd_port, reach=reach) as local:
        await local.connect(node)
        await _seq(local, node, 500)  # warm up
        await _window(local, node, 2000, INFLIGHT)
        for _ in range(slices):
            nat = native.ask(f"seq {SLICE_CALLS}")
            for name in ("rpc_seq", "rpc_64", "rpc_64_tasks"):
                out[name][1].append(nat)
            out["rpc_seq"][0].append(await _seq(local, node, SLICE_CALLS))
            out["rpc_64"][0].append(await _window(local, node, INFLIGHT_CALLS, INFLIGHT))
            out["rpc_64_tasks"][0].append(await _workers(local, node, INFLIGHT_CALLS, INFLIGHT))
        data = b"\x07" * bin_size  # written memory, as binary:copy/2 makes on the native side
        for _ in range(BIN_SLICES):
            out["bin_64mib"][1].append(native.ask(f"bin {bin_size}"))
            out["bin_64mib"][0].append(await _bin(local, node, data))
    return out


def run(epmd_port: int, node: str, cookie: str | None = None, *, slices: int = SLICES,
        bin_size: int = BIN_SIZE, reach=None, native_flags: str = "") -> list[dict]:
    """Measure ours and native against ``node``.

    Rows {name, ours, native, ratio, unit, target, ours_median, native_median}: ours
    and native are the best slice of each side, the medians are shown for scale.
    ``reach``/``native_flags``: the carrier of each side (scripts/bench_tls.py: TLS).
    """
    cookie = cookie if cookie is not None else read_cookie_file()
    native = Native(epmd_port, node, cookie, native_flags)
    try:
        got = asyncio.run(_measure(native, epmd_port, node, cookie, slices, bin_size, reach))
    finally:
        native.close()
    rows = []
    for name, (ours, nat) in got.items():
        rows.append({
            "name": name, "ours": max(ours), "native": max(nat), "ratio": max(ours) / max(nat),
            "unit": "MB/s" if name == "bin_64mib" else "calls/s", "target": TARGETS[name],
            "ours_median": statistics.median(ours), "native_median": statistics.median(nat),
        })
    return rows


def _standalone(args: argparse.Namespace) -> list[dict]:
    sys.path.insert(0, str(ROOT / "tests"))
    from support.nodes import Epmd, ErlNode

    cookie = "bench" + secrets.token_hex(6)
    with Epmd() as epmd:
        target = ErlNode(epmd, cookie=cookie, long=True)
        target.start()
        try:
            return run(epmd.port, target.node, cookie, slices=args.slices, bin_size=args.bytes)
        finally:
            target.kill()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--slices", type=int, default=SLICES)
    ap.add_argument("--bytes", type=int, default=BIN_SIZE)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    rows = _standalone(args)
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(f"{'bench':<13} {'ours':>10} {'native':>10} {'ratio':>7} {'target':>7}   "
          f"{'median ours/native':>20}  unit")
    for r in rows:
        ok = "ok" if r["ratio"] >= r["target"] else "SHORT"
        med = f"{r['ours_median']:.0f}/{r['native_median']:.0f}"
        print(f"{r['name']:<13} {r['ours']:>10.0f} {r['native']:>10.0f} {r['ratio']:>6.2f}x {r['target']:>6.1f}x   "
              f"{med:>20}  {r['unit']} {ok}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
