"""`erldeploy agent status|unload`: where the on-node agent is loaded, and removing it."""

from __future__ import annotations

import asyncclick as click

from .runner import open_cluster, report_per_node, settings_of
from .settings import global_options


@click.group()
@global_options
def agent() -> None:
    """The on-node agent (erldeploy_* modules loaded over distribution during an operation)."""


async def _on_every_node(ctx: click.Context, action: str, describe) -> int:
    s = settings_of(ctx)
    from ..release.agent import AgentClient

    async with open_cluster(s, need_all=False) as c:
        client = AgentClient(c.node)
        res = await c.each(getattr(client, action))
    return report_per_node(s, res, describe)


@agent.command("status")
@global_options
@click.pass_context
async def agent_status(ctx: click.Context) -> int:
    """Is the agent loaded on each node, and the last guarded-install outcome recorded there."""
    return await _on_every_node(ctx, "status", lambda v: v.describe())


@agent.command("unload")
@global_options
@click.pass_context
async def agent_unload(ctx: click.Context) -> int:
    """Remove the agent's modules from every node."""
    return await _on_every_node(ctx, "unload", lambda v: "unloaded" if v else "was not loaded")
