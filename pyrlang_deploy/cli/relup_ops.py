"""The relup command's run and its output, for both command-line paths (fastpath.py and
cmd_relup.py's click command): no asyncclick here, and asyncio only for the cluster
fallback. Like dist_ops.py for the distribution commands.
"""

from __future__ import annotations

import sys

from .output import emit_json

TYPE_CHECKING = False  # typing is not imported at run time: see cli/fastpath.py
if TYPE_CHECKING:
    from pathlib import Path
    from typing import Any

    from ..release.tarbytes import Prefetch
    from ..relupgen.local_erl import LocalErl
    from .settings import Settings


def boot_erl(restart: bool) -> LocalErl | None:
    """erl on PATH, started now: its boot then overlaps our imports and the reading of
    the releases (the fast path calls this before it even resolves the settings)."""
    from ..relupgen.local_erl import path_erl

    return path_erl(restart)


def prefetch(old: Path, new: Path) -> Prefetch:
    """OLD and NEW read and gunzipped in a thread from now on (beside erl's boot)."""
    from ..release.tarbytes import Prefetch

    return Prefetch([old, new])


def run(s: Settings, old: Path, new: Path, out: Path | None, *, appup_dir: Path | None = None,
        show: bool = False, restart: bool = False, full: bool = False,
        early: LocalErl | None = None, pre: Prefetch | None = None) -> int:
    """early: boot_erl's emulator when the caller started it; closed here whatever happens.
    pre: prefetch()'s reader when the caller started it."""
    import gc

    from ..errors import UsageError

    if out is None and not show:
        if early is not None:
            early.close()
        raise UsageError("relup needs -o OUT.tar.gz (or --show to only print the plan)")
    if early is None:
        early = boot_erl(restart)
    if pre is None:
        pre = prefetch(old, new)
    # Tar headers, beam chunks and decoded debug info: many small objects freed by their
    # reference counts; the cycle collector's passes over them were ~5% of our CPU.
    gc.disable()
    try:
        from ..relupgen.run import make_upgrade

        report = make_upgrade(old, new, out, appup_dir=appup_dir, restart=restart, show=show, full=full,
                              remote=on_cluster(s, restart) if s.nodes else None, early=early,
                              prefetch=pre)
    finally:
        gc.enable()
    if s.json:
        emit_json(report.to_json())
    else:
        render(report, show=show, quiet=s.quiet)
    return 0


def on_cluster(s: Settings, restart: bool):
    """systools on the first node of the cluster, for a machine with no Erlang: the one
    place this command needs the distribution client (and its event loop)."""
    def remote(inputs: Any) -> Any:
        import asyncio

        from ..relupgen.make_relup import run_on_node
        from .runner import open_cluster

        async def go() -> Any:
            async with open_cluster(s, discover=False) as c:
                return await run_on_node(c, c.members[0], inputs, restart)
        return asyncio.run(go())
    return remote


def render(report: Any, *, show: bool, quiet: bool) -> None:
    p = report.plan
    w = sys.stdout.write
    if show:
        for app, a in p.appups.items():
            w(f"--- lib/{app}-{a.new_vsn}/ebin/{app}.appup\n{a.text()}\n")
        w(f"--- releases/{p.new_vsn}/relup (systools:make_relup, {report.relup.runner})\n")
        for line in relup_plan(report.relup_term):
            w(line + "\n")
    if not quiet or show:
        w(summary_lines(report))
    for warning in p.warnings:
        print(f"warning: {warning.message}", file=sys.stderr)
    for sw in report.relup.warnings:
        print(f"warning: systools: {sw}", file=sys.stderr)
    if report.out is not None:
        what = "all of NEW" if report.full else "what nodes on OLD lack"
        # a relup that reboots the nodes is installed in restart mode (which checks heart first)
        restart = " --restart" if upgrade_kind(report) != "hot upgrade" else ""
        w(f"wrote {report.out} ({report.out_size} bytes, {what}): "
          f"erldeploy install {p.new_vsn} --tar {report.out}{restart}\n")


def upgrade_kind(report: Any) -> str:
    """hot, or which restart the relup's entry up from OLD makes."""
    if report.plan.restart:
        return "restart upgrade (restart_emulator)"
    if "restart_" not in report.relup.text:     # no restart instruction at all: no need to parse it
        return "hot upgrade"
    instrs = report.relup_term.up_from.get(report.plan.old_vsn, [])
    if instrs and instrs[0] == "restart_new_emulator":
        return "emulator-restart upgrade (restart_new_emulator: each node reboots into NEW's emulator and core apps)"
    if "restart_emulator" in instrs:
        return "restart upgrade (restart_emulator)"
    return "hot upgrade"


def summary_lines(report: Any) -> str:
    p = report.plan
    kind = upgrade_kind(report)
    head = (f"{p.name} {p.old_vsn} -> {p.new_vsn}: {kind}, {p.layout} layout; "
            f"relup by systools:make_relup, {report.relup.runner}")
    lines = [head]
    for a in p.apps:
        if a.kind == "added":
            lines.append(f"  added    {a.name} {a.new_vsn}")
        elif a.kind == "removed":
            lines.append(f"  removed  {a.name} {a.old_vsn}")
        else:
            lines.append(f"  changed  {a.name} {a.old_vsn} -> {a.new_vsn} ({_source(a.appup.source)})")
            c = a.appup.changes
            for label, mods in (("code_change", c.code_change), ("supervisor", c.supervisors),
                                ("loaded", c.loaded), ("added", c.added), ("deleted", c.deleted)):
                if mods:
                    lines.append(f"      {label:<11} {', '.join(mods)}")
    if p.restart:
        lines.append("  (the modules above load when the nodes restart into NEW: no code changes before)")
    for note in p.notes:
        lines.append(f"  note: {note}")
    return "\n".join(lines) + "\n"


def _source(source: str) -> str:
    return {"generated": "appup generated", "ebin": "its own appup in NEW",
            "appup-dir": "appup from --appup-dir"}.get(source, source)


def relup_plan(relup: Any) -> list[str]:
    """The relup's instructions, one short line each, per direction."""
    from ..term import format_term

    out = []
    for title, entries in (("up from", relup.up_from), ("down to", relup.down_to)):
        for vsn, instrs in entries.items():
            out.append(f"{title} {vsn}: {len(instrs)} instructions")
            for i in instrs:
                out.append("  " + (str(i) if isinstance(i, str) else _short(i, format_term)))
    return out


def _short(instr: Any, fmt) -> str:
    if isinstance(instr, tuple) and instr:
        tag, args = str(instr[0]), instr[1:]
        if tag == "load_object_code" and len(args) == 1:
            app, vsn, mods = args[0]
            return f"load_object_code {app} {fmt(vsn)}: {', '.join(map(str, mods))}"
        return tag + " " + " ".join(fmt(a) for a in args)
    return fmt(instr)
