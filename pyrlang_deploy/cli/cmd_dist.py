"""ping, rpc, eval, nodes: the distribution basics (the work itself is in dist_ops.py)."""

from __future__ import annotations

import asyncclick as click

from . import dist_ops
from .runner import settings_of
from .settings import global_options


@click.command()
@global_options
@click.pass_context
async def ping(ctx: click.Context) -> int:
    """Connect to every node (handshake + one call) and report the round trip."""
    return await dist_ops.ping(settings_of(ctx))


@click.command()
@global_options
@click.argument("module")
@click.argument("function")
@click.argument("args", nargs=-1)
@click.pass_context
async def rpc(ctx: click.Context, module: str, function: str, args: tuple[str, ...]) -> int:
    """Call MODULE:FUNCTION(ARGS...) on every target node.

    Each ARG is a term in the --syntax: Erlang 42, foo, "a string", <<"bin">>, {a,[1,2]},
    #{k => v}; Elixir 42, :foo, 'chars', "bin", {:a, [1, 2]}, %{k: 1}. In Elixir syntax
    MODULE may be an alias: MyApp.Release is 'Elixir.MyApp.Release'.

    \b
    erldeploy rpc -n a@host erlang system_info otp_release
    erldeploy rpc -n a@host lists seq 1 10
    erldeploy rpc -n a@host --syntax elixir MyApp.Release migrate
    """
    return await dist_ops.rpc(settings_of(ctx), module, function, args)


@click.command("eval")
@global_options
@click.argument("expr")
@click.option("--elixir", "elixir", is_flag=True, help="EXPR is Elixir source, evaluated by the node's Code module.")
@click.pass_context
async def eval_(ctx: click.Context, expr: str, elixir: bool) -> int:
    """Evaluate expressions on every target node: erldeploy eval 'lists:sum([1,2,3]).'

    With --elixir: erldeploy eval --elixir 'Enum.sum([1, 2, 3])'. io output streams back.
    """
    return await dist_ops.eval_(settings_of(ctx), expr, elixir)


@click.command("nodes")
@global_options
@click.pass_context
async def nodes_(ctx: click.Context) -> int:
    """List the cluster's members as seen from the given nodes (always discovers)."""
    return await dist_ops.nodes(settings_of(ctx))
