"""The relup command's work, in order: read OLD and NEW, plan, run systools, write OUT.

Plain threads, no event loop (asyncio is the distribution client's, and costs a tenth of
this command's CPU to import): erl boots from the very start, OLD is read in a thread
beside NEW (zlib lets go of the GIL), and OUT's bulk is written while systools runs; the
relup is the last member added. A cluster node runs systools only when no local Erlang
can (`remote`, which brings its own event loop).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from ..errors import ReleaseError
from ..release.tarbytes import Prefetch
from .local_erl import LocalErl, RelupResult, path_erl
from .make_relup import Inputs, carried_erts, collect_inputs
from .package import OutWriter, already_there
from .plan import UpgradePlan, build_plan
from .releases import open_release


class Background:
    """fn(*args) in a daemon thread; result() waits, then returns its value or raises its error."""

    def __init__(self, fn: Callable[..., Any], *args: Any) -> None:
        self._value: Any = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(fn, args), daemon=True)
        self._thread.start()

    def _run(self, fn: Callable[..., Any], args: tuple) -> None:
        try:
            self._value = fn(*args)
        except BaseException as e:  # noqa: BLE001 - handed to the waiting thread
            self._error = e

    def result(self) -> Any:
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self._value

    def wait(self) -> None:
        self._thread.join()


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


def make_upgrade(old_path: Path, new_path: Path, out: Path | None, *, appup_dir: Path | None = None,
                 restart: bool = False, show: bool = False, full: bool = False,
                 remote: Callable[[Inputs], RelupResult] | None = None,
                 early: LocalErl | None = None, prefetch: Prefetch | None = None) -> RelupReport:
    """remote: runs systools on a node of the target cluster, used only when no local
    Erlang can. early: an erl on PATH the caller booted already (path_erl), else one is
    booted here. prefetch: OLD and NEW being read since the caller started it."""
    # Boot erl on PATH while the releases are read; swapped for NEW's own ERTS if it has one.
    if early is None:
        early = path_erl(restart)
    local: LocalErl | None = early
    writer: OutWriter | None = None
    bulk: Background | None = None
    try:
        if prefetch is not None:            # zlib in its thread already: parse here, in turn
            old = open_release(old_path, prefetch.get(old_path))
            new = open_release(new_path, prefetch.get(new_path))
        else:
            reading_old = Background(open_release, old_path)
            try:
                new = open_release(new_path)
            finally:
                old = reading_old.result()  # OLD's error first: the command line names OLD first
        carried = carried_erts(new, restart)       # boots while we plan
        if carried is not None:
            if early is not None:
                early.close()
            local = carried
        plan = build_plan(old, new, appup_dir=appup_dir, restart=restart, defer=True)
        texts = plan.appup_texts()
        inputs = collect_inputs(old, new, texts)
        if not show and out is not None:
            have = () if full else already_there(old, new)
            writer = OutWriter(out, new, texts, have)
            bulk = Background(writer.write_bulk)
        if local is not None:
            local.start(inputs)
            plan.check_modules()            # while systools runs
            relup = local.result()
        elif remote is not None:
            plan.check_modules()
            relup = remote(inputs)
        else:
            raise ReleaseError("no Erlang to run systools:make_relup: put erl on PATH, "
                               "or give -n NODE of the target cluster")
        report = RelupReport(plan, relup, None, full=full)
        if bulk is not None:
            bulk.result()
            path = writer.finish(relup.text)
            writer = None
            report.out, report.out_size = path, path.stat().st_size
        return report
    finally:
        if bulk is not None:
            bulk.wait()
        if writer is not None:
            writer.abort()
        if local is not None:
            local.close()
        if early is not None and early is not local:
            early.close()
