"""Hooks: the user's calls at fixed points of an install (`--before`, `--after`, `--drain`).

    before   exactly once, on the first node to change, after preflight and before anything
             changes (the migration slot: 'Elixir.MyApp.Release':migrate())
    after    exactly once, on the same node, after every node is permanent
    drain    on each node, before it restarts (restart mode: stop accepting, let work finish)

A call fails when it raises (or the node goes down) or returns `error` / `{error, _}`; any
other value is success. What it prints through its group leader (io:format) streams back
while it runs, and is kept in the report with its value.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import ErldeployError, ReleaseError
from .terms import is_tagged, show

if TYPE_CHECKING:
    from .nodeops import NodeOps

SLOTS = ("before", "after", "drain")
Output = Callable[[str, str, str], None]      # on_output(slot, node, text)


@dataclass(frozen=True)
class HookCall:
    slot: str                   # before | after | drain
    module: str
    function: str
    args: tuple[Any, ...] = ()

    def describe(self) -> str:
        return f"{self.module}:{self.function}({', '.join(show(a) for a in self.args)})"


def parse_hook(slot: str, spec: str | None) -> HookCall | None:
    """`MOD:FUN` or `MOD:FUN(ARGS)` (Erlang terms) -> HookCall; None when not given."""
    from .install import parse_verify

    parsed = parse_verify(spec, option=f"--{slot}")
    if parsed is None:
        return None
    mod, fun, args = parsed
    return HookCall(slot, mod, fun, tuple(args))


@dataclass
class HookResult:
    slot: str
    node: str
    call: str
    ok: bool
    value: str | None = None    # the returned term, in Erlang syntax
    error: str | None = None
    output: str = ""
    seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {"slot": self.slot, "node": self.node, "call": self.call, "ok": self.ok, "value": self.value,
                "error": self.error, "output": self.output, "seconds": round(self.seconds, 3)}


def failed(value: Any) -> bool:
    return value == "error" or is_tagged(value, "error")


class HookRunner:
    """Runs hook calls and keeps every result (the report lists them in order)."""

    def __init__(self, ops: NodeOps, emit: Callable[..., None], *, timeout: float,
                 on_output: Output | None = None):
        self.ops = ops
        self.emit = emit
        self.timeout = timeout
        self.on_output = on_output
        self.results: list[HookResult] = []

    async def run(self, call: HookCall, node: str) -> HookResult:
        chunks: list[str] = []

        def io(text: str) -> None:
            chunks.append(text)
            if self.on_output:
                self.on_output(call.slot, node, text)

        self.emit(node, call.slot, "start", call.describe())
        t0 = time.perf_counter()
        res = HookResult(call.slot, node, call.describe(), ok=True)
        try:
            value = await self.ops.rpc(node, call.module, call.function, list(call.args),
                                       timeout=self.timeout, io=io)
            res.value = show(value)
            if failed(value):
                res.ok, res.error = False, f"returned {res.value}"
        except ErldeployError as e:
            res.ok, res.error = False, str(e)
        res.seconds = time.perf_counter() - t0
        res.output = "".join(chunks)
        self.results.append(res)
        self.emit(node, call.slot, "ok" if res.ok else "fail",
                  f"{res.call} -> {res.value}" if res.ok else f"{res.call}: {res.error}", seconds=res.seconds)
        return res

    async def run_or_raise(self, call: HookCall, node: str) -> HookResult:
        res = await self.run(call, node)
        if not res.ok:
            raise ReleaseError(f"{node}: the --{call.slot} hook {res.call} failed: {res.error}", node=node)
        return res
