"""`erldeploy shell`: the REPL (see pyrlang_deploy/repl.py)."""

from __future__ import annotations

import asyncclick as click

from .runner import open_cluster, settings_of
from .settings import global_options


@click.command()
@global_options
@click.pass_context
async def shell(ctx: click.Context) -> int:
    """A Python prompt with top-level await, connected to the cluster.

    \b
    >>> await rpc(nodes[0], "erlang", "memory", [])
    >>> await status()
    """
    s = settings_of(ctx)
    from ..repl import run_shell
    from .syntax import decide

    async with open_cluster(s, need_all=False) as c:
        return await run_shell(c, await decide(s.syntax, c))
