"""What a generated upgrade cannot promise: one line per risk, for the summary.

Pure: reads release facts and beams already parsed, returns Warning values.
"""

from __future__ import annotations

from dataclasses import dataclass

from .appup import Appup
from .beam import BeamInfo
from .releases import version_key

# Apps whose running processes a generated appup does not handle: their listeners and
# acceptors keep old code, or their own appups tell you to restart them.
UNSAFE_APPS = {
    "ranch": "ranch listeners/acceptors are not upgraded by load_module: suspend them "
             "(ranch:suspend_listener) around the upgrade, or use --restart",
    "cowboy": "cowboy runs on ranch: its connection processes keep old code; "
              "suspend the listeners or use --restart",
}
CORE_APPS = ("kernel", "stdlib", "sasl")


@dataclass(frozen=True)
class Warning:
    kind: str   # unsafe_app | state_record | restart_new_emulator | not_newer | same_vsn_changed
    #             | consolidated_protocol
    app: str | None
    message: str

    def to_json(self) -> dict[str, str | None]:
        return {"kind": self.kind, "app": self.app, "message": self.message}


def _is_state_record(name: str) -> bool:
    """Record names that hold a process's state in OTP idiom."""
    return name in ("state", "data", "st") or name.endswith(("_state", "_data"))


def release_warnings(name: str, old_vsn: str, new_vsn: str, old_erts: str, new_erts: str,
                     old_apps: dict[str, str], new_apps: dict[str, str], restart: bool) -> list[Warning]:
    out = []
    if version_key(new_vsn) <= version_key(old_vsn):
        out.append(Warning("not_newer", None, f"NEW {name} {new_vsn} is not newer than OLD {old_vsn}"))
    core = [a for a in CORE_APPS if a in old_apps and a in new_apps and old_apps[a] != new_apps[a]]
    if old_erts != new_erts or core:
        what = [f"erts {old_erts} -> {new_erts}"] if old_erts != new_erts else []
        what += [f"{a} {old_apps[a]} -> {new_apps[a]}" for a in core]
        out.append(Warning("restart_new_emulator", None,
                           f"{', '.join(what)}: the relup restarts the emulator (restart_new_emulator); "
                           "nodes need heart and a start program that boots the data file it is given "
                           "(install with --restart, which checks both first)"))
    for app, why in UNSAFE_APPS.items():
        if app in new_apps and old_apps.get(app) not in (None, new_apps[app]) and not restart:
            out.append(Warning("unsafe_app", app, f"{app} {old_apps[app]} -> {new_apps[app]}: {why}"))
    return out


def module_warnings(appup: Appup, old: dict[str, BeamInfo], new: dict[str, BeamInfo]) -> list[Warning]:
    """A state record whose fields changed while code_change hands the state back untouched."""
    out = []
    for m in sorted(set(old) & set(new)):
        o, n = old[m], new[m]
        if o.digest == n.digest:
            continue
        # processes only, tested before the records: those decode the whole debug info
        if not (n.implements_code_change() or n.behaviours & {"gen_server", "gen_statem", "gen_event"}):
            continue
        if o.records is None or n.records is None:
            continue
        for rec in sorted(set(o.records) & set(n.records)):
            if not _is_state_record(rec) or o.records[rec] == n.records[rec]:
                continue
            if n.code_change_passes_state is False:
                continue
            how = "has no code_change" if n.code_change_passes_state is None else \
                "code_change returns the state unchanged"
            out.append(Warning("state_record", appup.app,
                               f"{appup.app}: {m}'s record #{rec} changed "
                               f"({','.join(o.records[rec])} -> {','.join(n.records[rec])}) but it {how}"))
    return out


def unchanged_vsn_warning(app: str, vsn: str, changed: list[str]) -> Warning:
    return Warning("same_vsn_changed", app,
                   f"{app} {vsn}: same version in OLD and NEW but {len(changed)} module(s) differ "
                   f"({', '.join(changed[:3])}{'...' if len(changed) > 3 else ''}): not upgraded; bump its vsn")
