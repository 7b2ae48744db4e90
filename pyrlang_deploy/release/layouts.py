"""Release layouts of the tools people use, read from a tarball's member names (pure).

Where each tool puts the `.rel` decides the name `unpack_release` is given: release_handler
reads `releases/NAME.rel` for the name NAME (a missing member is silently skipped, then
`enoent`), and deletes that `.rel` and the tarball once it has unpacked.

    tool        .rel members                              unpack as   tarball placed at
    systools    releases/N-V.rel, releases/V/N-V.rel      "N-V"       releases/N-V.tar.gz
    relx        releases/N.rel, releases/V/N.rel          "N"         releases/N.tar.gz
    distillery  releases/N.rel, releases/V/N.rel, V/N.sh  "N"         releases/N.tar.gz
                (without releases/N.rel: "V/N", releases/V/N.tar.gz)
    mix         releases/V/N.rel (+ V/consolidated ...)   "V/N"       releases/V/N.tar.gz
    other       releases/V/N.rel only (Castle-style too)  "V/N"       releases/V/N.tar.gz

relx and Distillery are unpacked as "N" (not their own "V/N"), so releases/V/N.rel survives; where "V/N" is
the only name that works, release_handler deletes releases/V/N.rel and we write it back
(`restore_rel`): our verification and the tools' own scripts read it.

Uploads always land as releases/N-V.tar.gz (`upload_name`; the agent takes no
subdirectory, and `erldeploy upload` + a later `install` agree on it); the install moves it
to `placed` right before unpacking.

What a node boots next is the start script's business, not release_handler's:
relx's bin/N hard-codes REL_VSN (relx's own upgrade copies bin/N-V over it); mix's bin/N
reads releases/start_erl.data (make_permanent writes it); Distillery 2.1's bin/N reads
var/start_erl.data (nothing writes it: we keep it in step).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from ..errors import PreflightError

TOOLS = ("systools", "relx", "distillery", "mix", "other")


@dataclass(frozen=True)
class Layout:
    tool: str
    name: str
    vsn: str
    unpack_name: str              # what unpack_release is given
    restore_rel: str | None       # a member release_handler deletes that we write back after unpacking

    @property
    def upload_name(self) -> str:
        """Where uploads land, relative to the releases dir."""
        return f"{self.name}-{self.vsn}.tar.gz"

    @property
    def placed(self) -> str:
        """Where the tarball must be for unpack_release(unpack_name), relative to the releases dir."""
        return f"{self.unpack_name}.tar.gz"

    @property
    def rel_member(self) -> str:
        """The .rel that stays in releases/VSN after the unpack (what the verification reads)."""
        return (f"releases/{self.vsn}/{self.name}-{self.vsn}.rel" if self.tool == "systools"
                else f"releases/{self.vsn}/{self.name}.rel")


def detect(members: Iterable[str], name: str, vsn: str) -> Layout:
    """The layout of a tarball of release NAME VSN (from its .rel content), by its member names."""
    names = {m.rstrip("/") for m in members}
    if f"releases/{name}-{vsn}.rel" in names:
        return Layout("systools", name, vsn, f"{name}-{vsn}", None)
    inner = f"releases/{vsn}/{name}.rel"
    if inner not in names:
        raise PreflightError(f"release {name} {vsn}: no releases/{name}-{vsn}.rel, releases/{name}.rel "
                             f"or {inner} in the tarball: release_handler could not unpack it")
    sub = f"releases/{vsn}/"
    distillery = f"{sub}{name}.sh" in names or any(m.startswith(f"{sub}libexec/") for m in names)
    if f"releases/{name}.rel" in names:
        return Layout("distillery" if distillery else "relx", name, vsn, name, None)
    if f"{sub}elixir" in names or any(m.startswith(f"{sub}consolidated/") for m in names):
        tool = "mix"          # Castle-style upgrades are mix tarballs with a relup added
    elif distillery:
        tool = "distillery"
    else:
        tool = "other"
    return Layout(tool, name, vsn, f"{vsn}/{name}", inner)


def kept_old(members: Iterable[str], layout: Layout) -> list[str]:
    """Tarball files outside lib/, erts-*/ and releases/VSN/ that release_handler's
    keep_old_files extraction leaves as the node has them, beyond those install handles
    (bin/NAME, start_erl.data) or that must stay the node's own (RELEASES, COOKIE)."""
    n, v = layout.name, layout.vsn
    handled = {f"bin/{n}", f"bin/{n}-{v}", f"releases/{n}.rel", f"releases/{n}-{v}.rel",
               "releases/start_erl.data", "releases/RELEASES", "releases/COOKIE"}
    return sorted(m for m in members
                  if not m.endswith("/") and m not in handled
                  and not m.startswith(("lib/", "erts-", f"releases/{v}/")))


# --- what the node's start script boots next -------------------------------------------------

_REL_VSN = re.compile(r'^REL_VSN="([^"$]+)"', re.M)


def script_vsn(script: str) -> str | None:
    """The version a start script hard-codes (relx: REL_VSN="1.0.0" near the top), if any."""
    m = _REL_VSN.search(script[:8192])
    return m.group(1) if m else None


def start_erl_vsn(data: str) -> str | None:
    """`ERTS_VSN REL_VSN` (start_erl.data) -> REL_VSN."""
    parts = data.split()
    return parts[1] if len(parts) >= 2 else None


@dataclass(frozen=True)
class NextBoot:
    vsn: str | None       # what a restart by the release's own script starts (None: unknown)
    by: str               # what decides it: the file read


def next_boot(*, script: str | None, var_start_erl: str | None, start_erl: str | None,
              name: str | None) -> NextBoot:
    """Distillery's var/start_erl.data, else a version hard-coded in bin/NAME (relx), else
    releases/start_erl.data (mix, systools' bin/start)."""
    if var_start_erl is not None and start_erl_vsn(var_start_erl):
        return NextBoot(start_erl_vsn(var_start_erl), "var/start_erl.data")
    if script is not None and script_vsn(script):
        return NextBoot(script_vsn(script), f"bin/{name}")
    if start_erl is not None and start_erl_vsn(start_erl):
        return NextBoot(start_erl_vsn(start_erl), "releases/start_erl.data")
    return NextBoot(None, "")


# --- tarball entries that leave the release root ----------------------------------------------

def unsafe_entry(name: str, *, link: str | None = None, hardlink: bool = False) -> str | None:
    """Why a tarball entry would land outside the release root (None if it does not):
    an absolute path, a `..` step above the root, or a link pointing out of it."""
    if name.startswith("/"):
        return "an absolute path"
    if _escapes([], name):
        return "a path leaving the release root"
    if link is not None:
        if link.startswith("/"):
            return f"a {'hard ' if hardlink else 'sym'}link to an absolute path ({link})"
        base = [] if hardlink else name.rstrip("/").split("/")[:-1]
        if _escapes(base, link):
            return f"a {'hard ' if hardlink else 'sym'}link pointing out of the release root ({link})"
    return None


def _escapes(base: list[str], path: str) -> bool:
    depth = [p for p in base if p not in ("", ".")]
    for part in path.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if not depth:
                return True
            depth.pop()
        else:
            depth.append(part)
    return False
