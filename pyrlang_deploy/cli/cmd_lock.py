"""`erldeploy lock status|break`: the cluster-wide deploy lock (release/lock.py)."""

from __future__ import annotations

import sys

import asyncclick as click

from .output import emit_json
from .runner import open_cluster, settings_of
from .settings import global_options


@click.group()
@global_options
def lock() -> None:
    """The deploy lock every changing command holds (install, rollback, permanent, remove, upload)."""


async def _holders(c) -> dict:
    from ..release.lock import lock_status
    return await c.each(lambda n: lock_status(c, n))


@lock.command("status")
@global_options
@click.pass_context
async def lock_status_cmd(ctx: click.Context) -> int:
    """Who holds the deploy lock on each node: user, host, pid, since when, doing what."""
    s = settings_of(ctx)
    async with open_cluster(s, need_all=False) as c:
        res = await _holders(c)
        unreachable = dict(c.unreachable)
    if s.json:
        emit_json({"held": any(r.ok and r.value for r in res.values()),
                   "nodes": [{"node": n, "ok": r.ok, "holder": r.value.to_json() if r.ok and r.value else None,
                              **({"error": str(r.error)} if not r.ok else {})} for n, r in res.items()]
                  + [{"node": n, "ok": False, "holder": None, "error": str(e)} for n, e in unreachable.items()]})
    else:
        for n, r in res.items():
            if not r.ok:
                print(f"erldeploy: error: {r.error}", file=sys.stderr)
            elif r.value is None:
                print(f"{n}: free")
            else:
                dead = " [holder known dead: `erldeploy lock break` frees it]" if r.value.known_dead() else ""
                print(f"{n}: held by {r.value.describe()}{dead}")
        for e in unreachable.values():
            print(f"erldeploy: error: {e}", file=sys.stderr)
    errors = [r.error for r in res.values() if not r.ok] + list(unreachable.values())
    return max((e.exit_code for e in errors), default=0)


@lock.command("break")
@global_options
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.pass_context
async def lock_break_cmd(ctx: click.Context, yes: bool) -> int:
    """Free a deploy lock whose holder is known to be dead (its node gone, or its pid gone on this host)."""
    from ..errors import ErldeployError
    from ..release.lock import break_lock

    s = settings_of(ctx)
    code = 0
    async with open_cluster(s, need_all=False) as c:
        held = [r.value for r in (await _holders(c)).values() if r.ok and r.value]
        if not held:
            print("the deploy lock is free on every node")
            return 0
        for h in held:
            if not h.known_dead():
                print(f"erldeploy: error: {h.node}: the holder is not known to be dead: {h.describe()}",
                      file=sys.stderr)
                code = 1
                continue
            if not yes and not click.confirm(f"{h.node}: break the lock of {h.describe()}?", default=False):
                print("erldeploy: not broken", file=sys.stderr)
                code = 1
                continue
            try:
                print(f"{h.node}: {await break_lock(c, h)}")
            except ErldeployError as e:
                print(f"erldeploy: error: {e}", file=sys.stderr)
                code = max(code, e.exit_code)
    return code
