"""ping, rpc, eval, nodes: the distribution basics."""

from __future__ import annotations

import sys

import asyncclick as click

from ..term.types import Atom
from .output import emit_json
from .runner import exit_code_for, open_cluster, report_per_node, settings_of
from .settings import global_options


@click.command()
@global_options
@click.pass_context
async def ping(ctx: click.Context) -> int:
    """Connect to every node (handshake + one call) and report the round trip."""
    import time

    s = settings_of(ctx)
    async with open_cluster(s, need_all=False) as c:
        async def one(n: str):
            t0 = time.perf_counter()
            otp = await c.rpc(n, "erlang", "system_info", [Atom("otp_release")])
            return {"rtt_ms": round((time.perf_counter() - t0) * 1000, 3), "otp": str(otp)}
        res = await c.each(one)
        for n, e in c.unreachable.items():
            from ..cluster import NodeResult
            res[n] = NodeResult(n, error=e)
    return report_per_node(s, res, lambda v: f"pong ({v['rtt_ms']} ms, OTP {v['otp']})")




@click.command()
@global_options
@click.argument("module")
@click.argument("function")
@click.argument("args", nargs=-1)
@click.pass_context
async def rpc(ctx: click.Context, module: str, function: str, args: tuple[str, ...]) -> int:
    """Call MODULE:FUNCTION(ARGS...) on every target node.

    Each ARG is an Erlang term: 42, foo, "a string", <<"bin">>, {a,[1,2]}, #{k => v}.

    \b
    erldeploy rpc -n a@host erlang system_info otp_release
    erldeploy rpc -n a@host lists seq 1 10
    """
    from ..errors import TermSyntaxError, UsageError

    s = settings_of(ctx)
    parsed = []
    if args:  # the parser loads only when there is something to parse
        from ..term import parse_term
        try:
            parsed = [parse_term(a) for a in args]
        except TermSyntaxError as e:
            raise UsageError(f"bad argument: {e}") from None
    return await _run_on_nodes(s, lambda c, n: c.rpc(n, module, function, parsed, io=_io_writer(s)))


@click.command("eval")
@global_options
@click.argument("expr")
@click.pass_context
async def eval_(ctx: click.Context, expr: str) -> int:
    """Evaluate Erlang expressions on every target node: erldeploy eval 'lists:sum([1,2,3]).'"""
    s = settings_of(ctx)
    text = expr if expr.rstrip().endswith(".") else expr + "."
    return await _run_on_nodes(s, lambda c, n: eval_on(c, n, text, io=_io_writer(s)))


async def eval_on(c, node: str, text: str, io=None):
    from ..remote_eval import eval_erlang
    return await eval_erlang(c.rpc, node, text, io=io)


def _io_writer(s):
    """Remote io:format output: to stdout for people, to stderr in --json mode (stdout stays JSON)."""
    stream = sys.stderr if s.json else sys.stdout

    def write(text: str) -> None:
        stream.write(text)
        stream.flush()
    return write


async def _run_on_nodes(s, call) -> int:
    from ..term import format_term

    async with open_cluster(s) as c:
        res = await c.each(lambda n: call(c, n))
    errors = [r.error for r in res.values() if not r.ok]
    if s.json:
        docs = []
        for r in res.values():
            d = r.to_json()
            if r.ok:
                d["term"] = format_term(r.value)
            docs.append(d)
        emit_json({"ok": not errors, "nodes": docs})
    else:
        many = len(res) > 1
        for r in res.values():
            if r.ok:
                text = format_term(r.value)
                print(f"{r.node}: {text}" if many else text)
            else:
                print(f"erldeploy: error: {r.error}", file=sys.stderr)
    return exit_code_for(errors)


@click.command("nodes")
@global_options
@click.pass_context
async def nodes_(ctx: click.Context) -> int:
    """List the cluster's members as seen from the given nodes (always discovers)."""
    s = settings_of(ctx)
    async with open_cluster(s, discover=True, need_all=False) as c:
        members, down = list(c.members), dict(c.unreachable)
    if s.json:
        emit_json({"ok": not down, "members": members,
                   "unreachable": {n: str(e) for n, e in down.items()}})
    else:
        for m in members:
            print(m)
        for n, e in down.items():
            print(f"erldeploy: error: {e}", file=sys.stderr)
    return exit_code_for(list(down.values()))
