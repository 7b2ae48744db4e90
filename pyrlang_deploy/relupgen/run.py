"""The relup command's work, in order: read OLD and NEW, plan, run systools, write OUT.

Overlaps what can overlap: the two releases are read in threads (zlib lets go of the GIL),
a local emulator boots meanwhile, and OUT's bulk is written while systools runs; the relup
is the last member added.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from ..errors import ReleaseError
from .make_relup import (
    LocalErl,
    RelupResult,
    carried_erts,
    collect_inputs,
    path_erl,
    run_on_node,
)
from .package import OutWriter, already_there
from .plan import UpgradePlan, build_plan
from .releases import open_release


@dataclass
class RelupReport:
    plan: UpgradePlan
    relup: RelupResult
    out: Path | None                     # None with --show
    out_size: int = 0
    members: int = 0
    full: bool = False                   # OUT holds all of NEW, not only what OLD lacks

    @cached_property
    def relup_term(self) -> Any:
        """The relup parsed (release/relup.Relup), for --show."""
        from ..release.relup import parse_relup
        from ..release.tarball import parse_consult

        return parse_relup(parse_consult(self.relup.text))

    def to_json(self) -> dict[str, Any]:
        p = self.plan
        return {"schema": "erldeploy.relup/1", "ok": True, "release": p.name, "old_vsn": p.old_vsn,
                "new_vsn": p.new_vsn, "layout": p.layout, "restart": p.restart,
                "out": str(self.out) if self.out else None, "out_size": self.out_size, "full": self.full,
                "relup_by": self.relup.runner, "apps": [a.to_json() for a in p.apps],
                "appups": p.appup_texts(),
                "warnings": [w.to_json() for w in p.warnings],
                "systools_warnings": self.relup.warnings, "notes": p.notes, "relup": self.relup.text}


async def make_upgrade(old_path: Path, new_path: Path, out: Path | None, *, appup_dir: Path | None = None,
                       restart: bool = False, show: bool = False, full: bool = False,
                       cluster_factory=None, early: LocalErl | None = None) -> RelupReport:
    """cluster_factory: an async context manager factory giving a connected Cluster, used
    only when no local Erlang can run systools. early: an erl on PATH the caller booted
    already (path_erl), else one is booted here."""
    # Boot erl on PATH while the releases are read; swapped for NEW's own ERTS if it has one.
    if early is None:
        early = path_erl(restart)
    local: LocalErl | None = early
    writer: OutWriter | None = None
    bulk: asyncio.Future | None = None
    try:
        old, new = await asyncio.gather(asyncio.to_thread(open_release, old_path),
                                        asyncio.to_thread(open_release, new_path))
        carried = carried_erts(new, restart)       # boots while we plan
        if carried is not None:
            if early is not None:
                early.close()
            local = carried
        plan = build_plan(old, new, appup_dir=appup_dir, restart=restart)
        texts = plan.appup_texts()
        inputs = collect_inputs(old, new, texts)
        if not show and out is not None:
            have = () if full else already_there(old, new)
            writer = OutWriter(out, new, texts, have)
            bulk = asyncio.ensure_future(asyncio.to_thread(writer.write_bulk))
        if local is not None:
            relup = await asyncio.to_thread(local.run, inputs)
        elif cluster_factory is not None:
            async with cluster_factory() as c:
                relup = await run_on_node(c, c.members[0], inputs, restart)
        else:
            raise ReleaseError("no Erlang to run systools:make_relup: put erl on PATH, "
                               "or give -n NODE of the target cluster")
        report = RelupReport(plan, relup, None, full=full)
        if bulk is not None:
            await bulk
            path = await asyncio.to_thread(writer.finish, relup.text)
            writer = None
            report.out, report.out_size = path, path.stat().st_size
        return report
    finally:
        if bulk is not None and not bulk.done():
            await asyncio.wait([bulk])
        if writer is not None:
            writer.abort()
        if local is not None:
            local.close()
        if early is not None and early is not local:
            early.close()
