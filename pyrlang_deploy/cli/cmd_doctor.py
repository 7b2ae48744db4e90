"""`erldeploy doctor`: limits and risks of every node (see pyrlang_deploy/doctor.py)."""

from __future__ import annotations

import sys

import asyncclick as click

from .runner import exit_code_for, open_cluster, settings_of
from .settings import global_options


@click.command()
@global_options
@click.pass_context
async def doctor(ctx: click.Context) -> int:
    """Per node: processes, ports, atoms, ETS tables (used/limit), the fd limit, heart,
    net_ticktime, dist buffer busy limit, schedulers, memory, uptime, crash dumps;
    one warning line per risk.

    Exit 1 when any node has a warning (or cannot be asked), 3 when one is unreachable.
    """
    from ..doctor import doctor_all
    from .output import emit_json

    s = settings_of(ctx)
    async with open_cluster(s, need_all=False) as c:
        res = await doctor_all(c)
        down = dict(c.unreachable)
    errors = [r.error for r in res.values() if not r.ok] + list(down.values())
    warned = any(r.ok and r.value.warnings for r in res.values())
    if s.json:
        docs = [r.value.to_json() if r.ok else {"node": n, "error": str(r.error)} for n, r in res.items()]
        docs += [{"node": n, "error": str(err)} for n, err in down.items()]
        emit_json({"ok": not errors and not warned, "nodes": docs})
    else:
        for r in res.values():
            if r.ok:
                print(describe(r.value))
            else:
                print(f"erldeploy: error: {r.error}", file=sys.stderr)
        for err in down.values():
            print(f"erldeploy: error: {err}", file=sys.stderr)
    return max(exit_code_for(errors), 1 if warned else 0)


def describe(d) -> str:
    """A node's report as text: the facts, then one `warning:` line per risk."""
    from .render import _uptime

    f = d.facts

    def lim(x) -> str:
        if x.used is None or x.limit is None:
            return "unknown"
        return f"{x.used} / {x.limit} ({x.fraction:.0%})"

    mem = f.memory.get("total")
    lines = [
        f"{f.node}" + (f" (OTP {f.otp})" if f.otp else ""),
        f"  processes     {lim(f.processes)}",
        f"  ports         {lim(f.ports)}",
        f"  atoms         {lim(f.atoms)}",
        f"  ets tables    {lim(f.ets)}",
        f"  fd limit      {f.fd_limit if f.fd_limit is not None else 'unknown'}",
        f"  heart         {'running' if f.heart else 'not running'}",
        f"  net_ticktime  {f.net_ticktime} s" if f.net_ticktime is not None else "  net_ticktime  unknown",
        f"  dist buffer   busy limit {_bytes(f.dist_buf_busy_limit)}",
        f"  schedulers    {f.schedulers_online} online of {f.schedulers}",
        f"  memory        {_bytes(mem)}",
        f"  uptime        {'unknown' if f.uptime_s is None else _uptime(f.uptime_s)}",
        f"  crash dumps   {', '.join(f.crash_dumps) if f.crash_dumps else 'none'}"
        + (f" (release root {f.root_dir})" if f.root_dir and not f.crash_dumps else ""),
    ]
    lines += [f"  warning: {w}" for w in d.warnings]
    return "\n".join(lines)


def _bytes(n: int | None) -> str:
    if n is None:
        return "unknown"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)

