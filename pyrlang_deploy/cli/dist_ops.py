"""What ping, rpc, eval and nodes do, given Settings: no asyncclick here, so the
fast path (fastpath.py) and the click commands (cmd_dist.py) run the same code.

``driver`` is the node class the cluster runs on (None: asyncio's LocalNode); the
fast path gives the blocking driver for one plain-TCP node (erldist/blocking.py)."""

from __future__ import annotations

import sys

from .output import emit_json
from .runner import exit_code_for, open_cluster, report_per_node

TYPE_CHECKING = False  # typing is not imported at run time: see cli/fastpath.py
if TYPE_CHECKING:
    from typing import Any


async def ping(s, driver=None) -> int:
    import time

    from ..term.types import Atom

    async with open_cluster(s, need_all=False, driver=driver) as c:
        async def one(n: str):
            t0 = time.perf_counter()
            otp = await c.rpc(n, "erlang", "system_info", [Atom("otp_release")])
            return {"rtt_ms": round((time.perf_counter() - t0) * 1000, 3), "otp": str(otp)}
        res = await c.each(one)
        for n, e in c.unreachable.items():
            from ..cluster import NodeResult
            res[n] = NodeResult(n, error=e)
    return report_per_node(s, res, lambda v: f"pong ({v['rtt_ms']} ms, OTP {v['otp']})")


async def rpc(s, module: str, function: str, args: tuple[str, ...] | list[str], driver=None) -> int:
    from . import syntax as sx

    # a bad argument fails before any network: in the syntax given, or in neither syntax
    parsed = sx.parse_args(s.syntax, args) if s.syntax else sx.check_args_either(args)
    async with open_cluster(s, driver=driver) as c:
        syn = await sx.decide(s.syntax, c)
        if not s.syntax:
            parsed = sx.parse_args(syn, args)
        mod, fun = sx.name_arg(syn, module), sx.name_arg(syn, function)
        res = await c.each(lambda n: c.rpc(n, mod, fun, parsed, io=io_writer(s)))
    return _report_values(s, res, syn)


async def eval_(s, expr: str, elixir: bool = False, driver=None) -> int:
    from . import syntax as sx

    async with open_cluster(s, driver=driver) as c:
        syn = "elixir" if elixir and not s.syntax else await sx.decide(s.syntax, c)
        if elixir:
            from ..elixir_eval import eval_elixir
            res = await c.each(lambda n: eval_elixir(c.rpc, n, expr, io=io_writer(s)))
        else:
            from ..remote_eval import eval_erlang
            text = expr if expr.rstrip().endswith(".") else expr + "."
            res = await c.each(lambda n: eval_erlang(c.rpc, n, text, io=io_writer(s)))
    return _report_values(s, res, syn)


async def nodes(s) -> int:
    async with open_cluster(s, discover=True, need_all=False) as c:
        members, down = list(c.members), dict(c.unreachable)
    if s.json:
        emit_json({"ok": not down, "members": members,
                   "unreachable": {n: str(e) for n, e in down.items()}})
    else:
        for m in members:
            print(m)
        for e in down.values():
            print(f"erldeploy: error: {e}", file=sys.stderr)
    return exit_code_for(list(down.values()))


def io_writer(s):
    """Remote io:format output: to stdout for people, to stderr in --json mode (stdout stays JSON)."""
    stream = sys.stderr if s.json else sys.stdout

    def write(text: str) -> None:
        stream.write(text)
        stream.flush()
    return write


def _report_values(s, res: dict[str, Any], syn: str) -> int:
    from .syntax import printer

    fmt = printer(syn)
    errors = [r.error for r in res.values() if not r.ok]
    if s.json:
        docs = []
        for r in res.values():
            d = r.to_json()
            if r.ok:
                d["term"] = fmt(r.value, node=r.node)
            docs.append(d)
        emit_json({"ok": not errors, "syntax": syn, "nodes": docs})
    else:
        many = len(res) > 1
        for r in res.values():
            if r.ok:
                text = fmt(r.value, node=r.node)
                print(f"{r.node}: {text}" if many else text)
            else:
                print(f"erldeploy: error: {r.error}", file=sys.stderr)
    return exit_code_for(errors)
