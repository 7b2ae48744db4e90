"""Shared plumbing of the commands: settings -> a connected Cluster, and exit codes."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from ..errors import ErldeployError
from .settings import Settings, print_warnings, resolve

TYPE_CHECKING = False  # typing is not imported at run time: see cli/fastpath.py
if TYPE_CHECKING:
    from typing import Any

    from ..cluster import Cluster


def settings_of(ctx: Any) -> Settings:
    """The click command's Settings (the fast path builds its own with resolve_given)."""
    s = resolve(ctx)
    print_warnings(s)
    return s


@asynccontextmanager
async def open_cluster(s: Settings, *, discover: bool | None = None, need_all: bool = True,
                       driver: Any = None) -> AsyncIterator[Cluster]:
    """Connect to the target nodes. With need_all, an unreachable node is an error (exit 3).
    ``driver``: the node class (Cluster.driver; None for asyncio's LocalNode)."""
    from ..cluster import Cluster

    c = Cluster(seeds=s.require_nodes(), cookie=s.require_cookie(),
                name=s.name or (s.environment.node_name if s.environment else None),
        timeout=s.timeout, epmd_port=s.epmd_port, discover=s.cluster if discover is None else discover,
        reach=s.reach, driver=driver)
    try:
        await c.open()
        if need_all and c.unreachable:
            raise next(iter(c.unreachable.values()))
        yield c
    finally:
        await c.close()


def report_per_node(s: Settings, res: dict, describe: Callable[[Any], str], **extra: Any) -> int:
    """The usual ending of a per-node command: one JSON document, or a line per node
    (successes on stdout unless --quiet, errors on stderr); returns the exit code."""
    from .output import emit_json

    errors = [r.error for r in res.values() if not r.ok]
    if s.json:
        emit_json({"ok": not errors, **extra, "nodes": [r.to_json() for r in res.values()]})
    else:
        for r in res.values():
            if r.ok:
                if not s.quiet:
                    print(f"{r.node}: {describe(r.value)}")
            else:
                print(f"erldeploy: error: {r.error}", file=sys.stderr)
    return exit_code_for(errors)


def exit_code_for(errors: list[ErldeployError]) -> int:
    """The worst exit code among per-node errors (3 connect beats 1 failed)."""
    return max((e.exit_code for e in errors), default=0)
