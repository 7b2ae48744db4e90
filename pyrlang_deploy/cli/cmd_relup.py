"""relup: build the upgrade tarball (appups + relup) between two releases."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import asyncclick as click

from .output import emit_json
from .runner import open_cluster, settings_of
from .settings import global_options


@click.command()
@global_options
@click.argument("old", type=click.Path(exists=True, path_type=Path))
@click.argument("new", type=click.Path(exists=True, path_type=Path))
@click.option("-o", "--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="The upgrade tarball to write (NAME-VSN.tar.gz for a systools release).")
@click.option("--appup-dir", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None,
              help="Directory of APP.appup files that win over generated ones.")
@click.option("--show", is_flag=True, help="Print the appups and the relup's plan; write nothing.")
@click.option("--restart", is_flag=True, help="A restart upgrade (restart_emulator) instead of a hot one.")
@click.option("--full", is_flag=True,
              help="Put all of NEW in OUT (default: leave out the libs and erts that nodes on OLD have).")
@click.pass_context
async def relup(ctx: click.Context, old: Path, new: Path, out: Path | None, appup_dir: Path | None,
                show: bool, restart: bool, full: bool) -> int:
    """Generate the appups and relup from OLD to NEW and write NEW with them as OUT.

    OLD and NEW: release tarballs or release root dirs (systools, rebar3/relx, mix, Distillery).
    The relup comes from OTP's own systools:make_relup (NEW's ERTS, erl on PATH, or a node
    given with -n). Install OUT with `erldeploy install VSN --tar OUT`.
    """
    from ..errors import UsageError

    s = settings_of(ctx)
    if out is None and not show:
        raise UsageError("relup needs -o OUT.tar.gz (or --show to only print the plan)")
    # boot erl first: its start-up then overlaps our imports and the reading of the releases
    from ..relupgen.make_relup import path_erl
    early = path_erl(restart)
    from ..relupgen.run import make_upgrade

    factory = (lambda: open_cluster(s, discover=False)) if s.nodes else None
    report = await make_upgrade(old, new, out, appup_dir=appup_dir, restart=restart, show=show,
                                full=full, cluster_factory=factory, early=early)
    if s.json:
        emit_json(report.to_json())
    else:
        render(report, show=show, quiet=s.quiet)
    return 0


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
