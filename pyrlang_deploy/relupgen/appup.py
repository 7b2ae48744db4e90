"""The appup generator: two versions of an application's modules in, appup instructions out.

Pure: no files, no Erlang. For every module of the app, old beam vs new beam:
  only in new                          {add_module, M}
  only in old                          {delete_module, M}
  same digest                          nothing (debug info and line tables do not count)
  changed supervisor                   {update, M, supervisor}
  changed, implements code_change      {update, M, {advanced, []}[, DepMods]}
  changed, anything else               {load_module, M[, DepMods]}
DepMods are the changed or added modules of the app that M calls (from its imports), so
systools loads M after them. The down instructions are the inverse (add <-> delete), in
reverse order, with DepMods from the old beams.

Apps added or removed between the releases need no appup: systools:make_relup writes
add_application / remove_application itself. Which appup wins over a generated one
(the user's) is decided in `choose_appup`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from ..term import Atom
from .beam import BeamInfo


@dataclass
class ModuleChanges:
    added: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    supervisors: list[str] = field(default_factory=list)     # {update, M, supervisor}
    code_change: list[str] = field(default_factory=list)     # {update, M, {advanced, []}}
    loaded: list[str] = field(default_factory=list)          # {load_module, M}

    def empty(self) -> bool:
        return not (self.added or self.deleted or self.supervisors or self.code_change or self.loaded)


@dataclass
class Appup:
    app: str
    old_vsn: str
    new_vsn: str
    up: list[Any]
    down: list[Any]
    source: str                     # generated | ebin (the user's, in NEW) | appup-dir
    changes: ModuleChanges = field(default_factory=ModuleChanges)
    term: Any = None                # the whole {Vsn, Ups, Downs} written to APP.appup
    raw: str | None = None          # a user's file as written (comments and all): shipped as is

    def text(self) -> str:
        from ..term import format_term

        if self.raw is not None:
            return self.raw
        return "%% appup of " + self.app + " (" + self.source + ")\n" + format_term(self.term) + ".\n"


def diff_modules(old: dict[str, BeamInfo], new: dict[str, BeamInfo],
                 reload: frozenset[str] = frozenset()) -> ModuleChanges:
    """reload: modules to load although their beam is the same (an Elixir protocol whose
    consolidated version changed: the one in ebin dispatches at run time)."""
    ch = ModuleChanges()
    ch.added = sorted(set(new) - set(old))
    ch.deleted = sorted(set(old) - set(new))
    for m in sorted(set(old) & set(new)):
        if old[m].digest == new[m].digest and m not in reload:
            continue
        if new[m].is_supervisor():
            ch.supervisors.append(m)
        elif new[m].implements_code_change():
            ch.code_change.append(m)
        else:
            ch.loaded.append(m)
    return ch


def generate(app: str, old_vsn: str, new_vsn: str, old: dict[str, BeamInfo],
             new: dict[str, BeamInfo], reload: frozenset[str] = frozenset()) -> Appup:
    ch = diff_modules(old, new, reload)
    moving = set(ch.added) | set(ch.supervisors) | set(ch.code_change) | set(ch.loaded)
    up_deps = {m: sorted((new[m].called_modules & moving) - {m}) for m in moving}
    back = (moving - set(ch.added)) | set(ch.deleted)
    down_deps = {m: sorted((old[m].called_modules & back) - {m}) for m in back}

    def changed(m: str, deps: dict[str, list[str]]) -> tuple:
        d = [Atom(x) for x in deps[m]]
        if m in ch.supervisors:
            return (Atom("update"), Atom(m), Atom("supervisor"))
        if m in ch.code_change:
            adv = (Atom("advanced"), [])
            return (Atom("update"), Atom(m), adv, d) if d else (Atom("update"), Atom(m), adv)
        return (Atom("load_module"), Atom(m), d) if d else (Atom("load_module"), Atom(m))

    up: list[Any] = [(Atom("add_module"), Atom(m)) for m in ch.added]
    up += [changed(m, up_deps) for m in dependency_order(moving - set(ch.added), up_deps)]
    up += [(Atom("delete_module"), Atom(m)) for m in ch.deleted]
    # down: undo in reverse; re-added modules first, the ones up added are deleted last
    down: list[Any] = [(Atom("add_module"), Atom(m)) for m in reversed(ch.deleted)]
    down += [changed(m, down_deps) for m in dependency_order(back - set(ch.deleted), down_deps)]
    down += [(Atom("delete_module"), Atom(m)) for m in reversed(ch.added)]
    a = Appup(app, old_vsn, new_vsn, up, down, "generated", ch)
    a.term = (new_vsn, [(old_vsn, up)], [(old_vsn, down)])
    return a


def dependency_order(mods: set[str], deps: dict[str, list[str]]) -> list[str]:
    """Modules a module calls come before it; a cycle falls back to name order."""
    out: list[str] = []
    state: dict[str, int] = {}

    def visit(m: str) -> None:
        if state.get(m):
            return          # done, or on the stack (a cycle: break it here)
        state[m] = 1
        for d in deps.get(m, []):
            if d in mods:
                visit(d)
        state[m] = 2
        out.append(m)

    for m in sorted(mods):
        visit(m)
    return out


# --- the user's appups win -----------------------------------------------------------

def matches(pattern: Any, vsn: str) -> bool:
    """An appup version entry: a string, or a binary regex (systools: the whole version must match)."""
    if isinstance(pattern, (bytes, bytearray)):
        try:
            return re.fullmatch(bytes(pattern).decode(), vsn) is not None
        except re.error:
            return False
    from ..release.terms import text

    return text(pattern) == vsn


def entry_for(entries: Any, vsn: str) -> list[Any] | None:
    for e in entries if isinstance(entries, list) else []:
        if isinstance(e, tuple) and len(e) == 2 and matches(e[0], vsn):
            return list(e[1])
    return None


def choose_appup(generated: Appup, ebin_term: Any | None, dir_term: Any | None,
                 raw: dict[str, str] | None = None) -> tuple[Appup, str | None]:
    """The appup to ship, and a note when a user's appup was set aside or completed.

    --appup-dir first, then one in NEW's ebin; either wins when it covers OLD in both
    directions. An ebin appup for other versions only gets our entry added to it.
    raw: source -> the file's text, kept for the chosen one."""
    from ..release.terms import text

    stale = None
    for source, term in (("appup-dir", dir_term), ("ebin", ebin_term)):
        if term is None:
            continue
        if not (isinstance(term, tuple) and len(term) == 3):
            return generated, f"{generated.app}: {source} appup is not {{Vsn, Up, Down}}: generated one used"
        if text(term[0]) != generated.new_vsn:
            note = (f"{generated.app}: {source} appup is for {text(term[0])}, not {generated.new_vsn}: "
                    "generated one used")
            if source == "appup-dir":
                return generated, note
            stale = note
            continue
        up, down = entry_for(term[1], generated.old_vsn), entry_for(term[2], generated.old_vsn)
        if up is not None and down is not None:
            chosen = Appup(generated.app, generated.old_vsn, generated.new_vsn, up, down, source,
                           generated.changes, term, (raw or {}).get(source))
            return chosen, None
        if source == "ebin":
            merged = (term[0], [(generated.old_vsn, generated.up)] + list(term[1]),
                      [(generated.old_vsn, generated.down)] + list(term[2]))
            a = Appup(generated.app, generated.old_vsn, generated.new_vsn, generated.up,
                      generated.down, "generated", generated.changes, merged)
            return a, (f"{generated.app}: its appup has no entry for {generated.old_vsn} both ways: "
                       "the generated entry was added to it")
    return generated, stale
