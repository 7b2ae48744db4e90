"""`erldeploy agent status|unload`: where the on-node agent is loaded, and removing it."""

from __future__ import annotations

import sys

import asyncclick as click

from .output import emit_json
from .runner import exit_code_for, open_cluster, settings_of
from .settings import global_options


@click.group()
@global_options
def agent() -> None:
    """The on-node agent (erldeploy_* modules loaded over distribution during an operation)."""


@agent.command("status")
@global_options
@click.pass_context
async def agent_status(ctx: click.Context) -> int:
    """Is the agent loaded on each node, and the last guarded-install outcome recorded there."""
    s = settings_of(ctx)
    from ..release.agent_client import AgentClient

    async with open_cluster(s, need_all=False) as c:
        client = AgentClient(c.node)
        res = await c.each(client.status)
    errors = [r.error for r in res.values() if not r.ok]
    if s.json:
        emit_json({"ok": not errors, "nodes": [r.to_json() for r in res.values()]})
    else:
        for r in res.values():
            if r.ok:
                print(f"{r.node}: {r.value.describe() if hasattr(r.value, 'describe') else r.value}")
            else:
                print(f"erldeploy: error: {r.error}", file=sys.stderr)
    return exit_code_for(errors)


@agent.command("unload")
@global_options
@click.pass_context
async def agent_unload(ctx: click.Context) -> int:
    """Remove the agent's modules from every node."""
    s = settings_of(ctx)
    from ..release.agent_client import AgentClient

    async with open_cluster(s, need_all=False) as c:
        client = AgentClient(c.node)
        res = await c.each(client.unload)
    errors = [r.error for r in res.values() if not r.ok]
    if s.json:
        emit_json({"ok": not errors, "nodes": [r.to_json() for r in res.values()]})
    else:
        for r in res.values():
            if r.ok:
                print(f"{r.node}: {'unloaded' if r.value else 'was not loaded'}")
            else:
                print(f"erldeploy: error: {r.error}", file=sys.stderr)
    return exit_code_for(errors)
