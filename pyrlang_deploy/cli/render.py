"""Human output with rich: the status tables, install progress lines and the final summary."""

from __future__ import annotations

import sys
import time
from collections import Counter
from typing import TYPE_CHECKING

from .output import console, err_console

if TYPE_CHECKING:
    from ..release.report import Event, InstallReport
    from ..release.status import ClusterStatus

_STATE_STYLE = {"permanent": "green", "current": "yellow", "unpacked": "cyan", "old": "dim"}


def _uptime(seconds: float) -> str:
    s = int(seconds)
    d, s = divmod(s, 86400)
    h, s = divmod(s, 3600)
    m, s = divmod(s, 60)
    return f"{d}d{h:02d}h" if d else f"{h}h{m:02d}m" if h else f"{m}m{s:02d}s"


def render_status(st: ClusterStatus, *, quiet: bool = False) -> None:
    from rich.table import Table
    from rich.text import Text

    con = console()
    majority = Counter(n.current for n in st.reachable).most_common(1)
    common = majority[0][0] if majority else None
    if not quiet:
        t = Table(title="Nodes", title_justify="left", show_lines=False)
        for col in ("node", "OTP / ERTS", "current", "permanent", "releases", "modified", "uptime"):
            t.add_column(col)
        for n in st.nodes:
            if not n.reachable:
                t.add_row(Text(n.node, style="bold red"), Text("unreachable: " + (n.error or ""), style="red"),
                          "", "", "", "", "")
                continue
            drift = n.current != common
            cur = Text(n.current or "-", style="bold red" if drift else "bold")
            perm = Text(n.permanent or "-", style="green" if n.current_is_permanent else "bold yellow")
            rels = Text()
            for i, r in enumerate(n.releases):
                if i:
                    rels.append(" ")
                rels.append(f"{r.vsn}:{r.state}", style=_STATE_STYLE.get(r.state, ""))
            mods = ", ".join(n.modified_modules) if n.modified_modules else "-"
            t.add_row(Text(n.node, style="red" if drift else ""), f"{n.otp_release} / {n.erts_version}",
                      cur, perm, rels, Text(mods, style="yellow" if n.modified_modules else "dim"),
                      _uptime(n.uptime_seconds))
        con.print(t)

        apps = sorted({a.name for n in st.reachable for a in n.applications})
        if apps and st.reachable:
            a = Table(title="Running applications", title_justify="left")
            a.add_column("application")
            for n in st.reachable:
                a.add_column(n.node)
            for app in apps:
                vs = [n.app_versions().get(app) for n in st.reachable]
                differ = len(set(vs)) > 1
                a.add_row(app, *[Text(v or "-", style="bold red" if differ else "") for v in vs])
            con.print(a)
        loaded = [(n.node, n.loaded_not_running) for n in st.reachable if n.loaded_not_running]
        for node, lst in loaded:
            con.print(Text(f"{node}: loaded, not running: " + ", ".join(f"{x.name} {x.vsn}" for x in lst),
                           style="dim"))
    for p in st.problems():
        con.print(Text("! ", style="bold red") + Text(p))
    if st.one_release:
        n = st.reachable[0]
        con.print(Text("cluster on one release: ", style="green")
                  + Text(f"{n.release_name} {n.current} (permanent) on {len(st.reachable)} "
                         f"node{'s' if len(st.reachable) != 1 else ''}"))
    else:
        con.print("[bold red]cluster is not on one permanent release[/bold red]")


class EventPrinter:
    """Prints install progress as it happens, one line per step, on stderr."""

    _ICON = {"start": "…", "ok": "✔", "fail": "✘", "info": "·"}

    def __init__(self, *, quiet: bool = False):
        self.quiet = quiet
        self.t0 = time.monotonic()
        self._last_progress: dict[str, int] = {}

    def __call__(self, ev: Event) -> None:
        if self.quiet:
            return
        if ev.state == "progress":
            # one line per quarter of an upload, so logs stay readable without a tty
            q = int(4 * ev.done / ev.total) if ev.total else 4
            if self._last_progress.get(ev.node, -1) >= q:
                return
            self._last_progress[ev.node] = q
            err_console().print(f"[dim]{time.monotonic() - self.t0:6.1f}s[/dim] {ev.node} upload "
                                f"{ev.done * 100 // max(ev.total, 1)}% ({ev.done}/{ev.total} bytes)")
            return
        if ev.state == "start" and ev.step not in ("upload", "install", "rollback"):
            return   # the quick steps only say when they are done
        from rich.text import Text

        style = {"ok": "green", "fail": "bold red", "info": "yellow"}.get(ev.state, "")
        took = f" ({ev.seconds:.2f}s)" if ev.seconds else ""
        detail = f": {ev.detail}" if ev.detail else ""
        # Text, not markup: details are Erlang terms, full of [brackets]
        line = Text(f"{time.monotonic() - self.t0:6.1f}s ", style="dim")
        line.append(f"{ev.node} ")
        line.append(f"{self._ICON.get(ev.state, '')} {ev.step}{detail}{took}", style=style)
        err_console().print(line, highlight=False)

    def close(self) -> None:
        pass


class InstallProgress:
    """On a terminal: one progress bar per node through its steps (upload counts its bytes).

    Log lines (EventPrinter) are kept for pipes and CI, where bars would be noise.
    """

    STEPS = ("upload", "unpack", "check", "install", "verify", "permanent")

    def __init__(self, steps: tuple[str, ...] = STEPS) -> None:
        self.steps = steps
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        self._p = Progress(TextColumn("{task.fields[node]}"), BarColumn(bar_width=30),
                           TextColumn("{task.description}"), TimeElapsedColumn(),
                           console=err_console(), transient=False)
        self._tasks: dict[str, object] = {}
        self._p.start()

    def _task(self, node: str):
        if node not in self._tasks:
            self._tasks[node] = self._p.add_task("waiting", node=node, total=len(self.steps))
        return self._tasks[node]

    def __call__(self, ev: Event) -> None:
        t = self._task(ev.node)
        base = self.steps.index(ev.step) if ev.step in self.steps else None
        if ev.state == "progress" and ev.total and base is not None:
            self._p.update(t, completed=base + ev.done / ev.total, description=f"upload {ev.done * 100 // ev.total}%")
        elif ev.state == "start" and base is not None:
            self._p.update(t, completed=base, description=f"{ev.step}…")
        elif ev.state == "ok" and base is not None:
            self._p.update(t, completed=base + 1, description=f"{ev.step} ✔")
        elif ev.state == "fail":
            self._p.update(t, description=f"[bold red]{ev.step} failed[/bold red]")
        elif ev.state == "info" and ev.step in ("crash", "rollback", "wait", "lease"):
            self._p.console.print(f"{ev.node} {ev.step}: {ev.detail}", highlight=False, markup=False)
            if ev.step == "rollback":
                self._p.update(t, description="rolled back")

    def close(self) -> None:
        self._p.stop()


def progress_renderer(s, steps: tuple[str, ...] = InstallProgress.STEPS):
    """Bars on a terminal, log lines elsewhere, nothing with --json or --quiet."""
    if not (s.quiet or s.json) and sys.stderr.isatty():
        return InstallProgress(steps)
    return EventPrinter(quiet=s.quiet or s.json)


_RESULT_STYLE = {"permanent": "green", "already": "green", "installed": "yellow", "rolled_back": "yellow",
                 "untouched": "dim", "failed": "bold red", "rollback_failed": "bold red"}


def render_install_report(rep: InstallReport, *, quiet: bool = False) -> None:
    from rich.table import Table
    from rich.text import Text

    con = console()
    if rep.plan and (rep.dry_run or not quiet):
        p = rep.plan
        if rep.dry_run:
            con.print(f"[bold]plan:[/bold] {p.release} {p.from_vsn} -> {p.to_vsn} ({p.direction}), "
                      f"{'restart through heart' if getattr(p, 'restart', False) else 'agent with lease' if p.agent else 'plain RPC'}")
            if p.adopt:
                con.print(f"  adopt first (mix release: create RELEASES, restart release_handler): "
                          f"{', '.join(p.adopt)}")
            if p.replace_unpacked:
                con.print(f"  remove the stale unpacked {p.to_vsn} on: {', '.join(p.replace_unpacked)}")
            for i, b in enumerate(p.batches, 1):
                con.print(f"  batch {i}: {', '.join(b)}")
            if p.installed_not_permanent:
                con.print(f"  verify + make permanent (installed earlier): {', '.join(p.installed_not_permanent)}")
            if p.already_permanent:
                con.print(f"  already permanent: {', '.join(p.already_permanent)}")
            if p.need_upload:
                con.print(f"  upload {p.tarball} to: {', '.join(p.need_upload)}")
            if p.need_unpack:
                how = f" as {p.layout.unpack_name!r} ({p.layout.tool} layout)" if p.layout else ""
                con.print(f"  unpack{how} on: {', '.join(p.need_unpack)}")
        for note in p.notes:
            con.print(Text("  note: ", style="yellow") + Text(note))
        for w in getattr(p, "warnings", ()):       # doctor's: advice, the install goes on
            con.print(Text("  warning: ", style="yellow") + Text(w))
    if not rep.dry_run and not rep.noop and rep.nodes:
        t = Table(title="Result per node", title_justify="left")
        for col in ("node", "result", "from", "now current", "permanent", "detail"):
            t.add_column(col)
        for o in rep.nodes:
            t.add_row(o.node, Text(o.result, style=_RESULT_STYLE.get(o.result, "")), o.from_vsn or "-",
                      o.current or "?", o.permanent or "?", Text(o.error or "", style="red"))
        con.print(t)
        for o in rep.nodes:
            for cr in o.crash_reports:
                con.print(Text(f"{o.node} crash report: ", style="red") + Text(cr))
    for h in getattr(rep, "hooks", ()):
        if h.ok and h.slot == "drain" and quiet:
            continue
        con.print(Text(f"--{h.slot} on {h.node}: ", style="green" if h.ok else "bold red")
                  + Text(f"{h.call} -> {h.value}" if h.ok else f"{h.call} failed: {h.error}"))
    style = "green" if rep.ok else "bold red"
    # Text, not markup: the message quotes Erlang terms, [lists] included
    (con if rep.ok else err_console()).print(Text(rep.message, style=style))
    if not rep.ok:
        sys.stderr.flush()
