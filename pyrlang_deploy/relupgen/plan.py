"""OLD and NEW, read -> what the upgrade does: app changes, the appups to ship, warnings.

No Erlang runs here; make_relup.py turns the plan's appups into the relup afterwards.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import UsageError
from ..term import Atom
from . import warnings as warn
from .appup import Appup, ModuleChanges, choose_appup, generate
from .beam import BeamError, BeamInfo, read_beam
from .releases import Release, ReleaseReadError


@dataclass
class AppChange:
    name: str
    kind: str                   # changed | added | removed
    old_vsn: str | None
    new_vsn: str | None
    appup: Appup | None = None

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"app": self.name, "kind": self.kind, "old_vsn": self.old_vsn,
                               "new_vsn": self.new_vsn}
        if self.appup is not None:
            c = self.appup.changes
            doc.update(appup=self.appup.source, added=c.added, deleted=c.deleted,
                       updated_supervisor=c.supervisors, updated_code_change=c.code_change,
                       loaded=c.loaded)
        return doc


@dataclass
class UpgradePlan:
    name: str
    old_vsn: str
    new_vsn: str
    old_erts: str
    new_erts: str
    layout: str
    restart: bool
    apps: list[AppChange] = field(default_factory=list)
    warnings: list[warn.Warning] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    # module checks not run yet (build_plan's defer): where their warnings go in `warnings`
    pending: list[tuple[int, Appup, dict[str, BeamInfo], dict[str, BeamInfo]]] = \
        field(default_factory=list, repr=False)

    def check_modules(self) -> None:
        """Run the deferred state-record checks (they decode whole debug info: a tenth of
        the command's CPU, and nothing systools reads depends on them)."""
        for at, appup, old, new in reversed(self.pending):
            self.warnings[at:at] = warn.module_warnings(appup, old, new)
        self.pending = []

    @property
    def appups(self) -> dict[str, Appup]:
        return {a.name: a.appup for a in self.apps if a.appup is not None}

    def appup_texts(self) -> dict[str, str]:
        return {app: a.text() for app, a in self.appups.items()}


def beams_of(rel: Release, app: str, vsn: str) -> dict[str, BeamInfo]:
    out = {}
    for fn, member in rel.ebin(app, vsn).items():
        if fn.endswith(".beam"):
            try:
                info = read_beam(rel.read(member))
            except BeamError as e:
                raise ReleaseReadError(f"{rel.origin.name}: {member}: {e}") from None
            out[info.module] = info
    return out


def _appup_term(data: bytes, where: str) -> Any:
    from ..release.tarball import parse_consult

    try:
        return parse_consult(data.decode("utf-8"))
    except Exception as e:  # noqa: BLE001 - a user's file with a syntax error
        raise ReleaseReadError(f"{where}: unreadable appup ({e})") from None


def _restart_new_emulator(app: str, old_vsn: str, new_vsn: str) -> Appup:
    """OTP's core apps change only with a new emulator: their own appups say just this."""
    instr = [Atom("restart_new_emulator")]
    a = Appup(app, old_vsn, new_vsn, instr, list(instr), "generated")
    a.term = (new_vsn, [(old_vsn, instr)], [(old_vsn, list(instr))])
    return a


def build_plan(old: Release, new: Release, *, appup_dir: Path | None = None,
               restart: bool = False, defer: bool = False) -> UpgradePlan:
    """defer: leave the module checks for plan.check_modules() (make_upgrade runs them
    while systools works)."""
    if old.name != new.name:
        raise UsageError(f"OLD is release {old.name} and NEW is {new.name}: both must be one release")
    plan = UpgradePlan(new.name, old.vsn, new.vsn, old.erts, new.erts, new.layout, restart)
    ov, nv = old.app_versions, new.app_versions
    plan.warnings += warn.release_warnings(new.name, old.vsn, new.vsn, old.erts, new.erts, ov, nv, restart)
    protocols = changed_consolidations(old, new)
    owned: set[str] = set()
    for app in sorted(set(ov) - set(nv)):
        plan.apps.append(AppChange(app, "removed", ov[app], None))
    for app in nv:
        if app not in ov:
            plan.apps.append(AppChange(app, "added", None, nv[app]))
        elif ov[app] == nv[app]:
            same = _same_vsn_changed(old, new, app, nv[app])
            if same:
                plan.warnings.append(warn.unchanged_vsn_warning(app, nv[app], same))
        else:
            change = _changed_app(plan, old, new, app, ov[app], nv[app], appup_dir, restart, protocols)
            if not defer:
                plan.check_modules()
            owned |= protocols & {fn[:-5] for fn in new.ebin(app, nv[app]) if fn.endswith(".beam")}
            plan.apps.append(change)
    if protocols - owned and not restart:
        rest = sorted(protocols - owned)
        plan.warnings.append(warn.Warning(
            "consolidated_protocol", None,
            f"consolidated protocol(s) {', '.join(rest)} changed but their apps keep their versions: "
            "nodes dispatch through OLD's consolidation until restarted (or use --restart)"))
    return plan


def changed_consolidations(old: Release, new: Release) -> set[str]:
    """Elixir: protocols whose consolidated beam (releases/VSN/consolidated) differs between
    OLD and NEW. update_paths does not switch that dir, so the generated appup reloads such a
    protocol from its app's ebin, where it dispatches at run time."""
    def beams(rel: Release) -> dict[str, str]:
        prefix = f"releases/{rel.vsn}/consolidated/"
        return {n[len(prefix):-5]: n for n in rel.files.names if n.startswith(prefix) and n.endswith(".beam")}
    o, n = beams(old), beams(new)
    changed = set()
    for mod, member in n.items():
        if mod not in o or read_beam(new.read(member)).digest != read_beam(old.read(o[mod])).digest:
            changed.add(mod)
    return changed


def _changed_app(plan: UpgradePlan, old: Release, new: Release, app: str, o: str, n: str,
                 appup_dir: Path | None, restart: bool, protocols: set[str]) -> AppChange:
    new_ebin = new.ebin(app, n)
    if not new_ebin:
        raise ReleaseReadError(f"{new.origin.name}: lib/{app}-{n}/ebin is missing: cannot upgrade {app}")
    ebin_term = dir_term = None
    raw: dict[str, str] = {}
    if f"{app}.appup" in new_ebin:
        data = new.read(new_ebin[f"{app}.appup"])
        ebin_term = _appup_term(data, f"{new.origin.name}: {app}.appup")
        raw["ebin"] = data.decode("utf-8")
    if appup_dir is not None and (appup_dir / f"{app}.appup").is_file():
        path = appup_dir / f"{app}.appup"
        data = path.read_bytes()
        dir_term = _appup_term(data, str(path))
        raw["appup-dir"] = data.decode("utf-8")
    old_beams = beams_of(old, app, o) if old.ebin(app, o) else None
    new_beams = beams_of(new, app, n)
    if app in warn.CORE_APPS and old_beams is not None:
        generated = _restart_new_emulator(app, o, n)
        generated.changes = _diff_or_empty(old_beams, new_beams)
    elif old_beams is None:
        if ebin_term is None and dir_term is None:
            raise ReleaseReadError(f"{old.origin.name}: lib/{app}-{o}/ebin is missing: "
                                   f"cannot compare {app} (give its appup with --appup-dir)")
        generated = generate(app, o, n, {}, {})
    else:
        try:
            generated = generate(app, o, n, old_beams, new_beams, frozenset(protocols))
        except BeamError as e:      # an Attr chunk is decoded only now, for changed modules
            raise ReleaseReadError(f"{new.origin.name}: lib/{app}-{n}: {e}") from None
        if restart:
            generated = _emptied(generated)
        plan.pending.append((len(plan.warnings), generated, old_beams, new_beams))
    chosen, note = choose_appup(generated, ebin_term, dir_term, raw)
    if note:
        plan.notes.append(note)
    return AppChange(app, "changed", o, n, chosen)


def _diff_or_empty(old: dict[str, BeamInfo], new: dict[str, BeamInfo]) -> ModuleChanges:
    from .appup import diff_modules

    return diff_modules(old, new)


def _emptied(a: Appup) -> Appup:
    """--restart: no code moves before the emulator restarts into NEW; the restart loads it all."""
    e = Appup(a.app, a.old_vsn, a.new_vsn, [], [], a.source, a.changes)
    e.term = (a.new_vsn, [(a.old_vsn, [])], [(a.old_vsn, [])])
    return e


def _same_vsn_changed(old: Release, new: Release, app: str, vsn: str) -> list[str]:
    """Modules whose code differs although the app kept its version (bytes first: cheap)."""
    o, n = old.ebin(app, vsn), new.ebin(app, vsn)
    changed = []
    for fn in sorted(set(o) & set(n)):
        if not fn.endswith(".beam"):
            continue
        a, b = old.read(o[fn]), new.read(n[fn])
        if a != b:
            try:
                if read_beam(a).digest != read_beam(b).digest:
                    changed.append(fn[:-5])
            except BeamError:
                changed.append(fn[:-5])
    return changed
