"""Which members of a release tarball a node lacks, decided from facts alone (pure).

    units(members)              -> the tarball's units: lib/APP-VSN and erts-VSN dirs
    lacking(contents, have)     -> the units a node must receive (missing, or content differs)
    other_builds(contents, have) -> the units a node has from another build (unpack keeps them)
    plan_deltas(contents, invs) -> one Delta per distinct node state (built once, sent to many)
    share_roots(invs)           -> nodes whose releases dir is another node's (same host and root)

`release_handler:unpack_release` accepts a tarball that carries only the lib dirs the node
lacks plus the `releases/` files: it checks that every lib of the `.rel` exists under the
root, and extracts with keep_old_files. So a unit is skipped only where the node has the
same dir with the same content (the digest: a rebuilt app with an unchanged version differs),
and everything outside lib/ and erts-*/ (releases/, bin/) always goes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass


def unit_of(member: str) -> str | None:
    """`lib/demo-0.0.2/ebin/x.beam` -> `lib/demo-0.0.2`; `erts-13.1/bin/beam` -> `erts-13.1`;
    anything else (releases/..., bin/...) -> None: always sent."""
    parts = member.strip("/").split("/")
    if parts[0] == "lib" and len(parts) >= 2 and "-" in parts[1]:
        return f"lib/{parts[1]}"
    if parts[0].startswith("erts-"):
        return parts[0]
    return None


@dataclass(frozen=True)
class Unit:
    """One lib/APP-VSN or erts-VSN dir of the tarball: its regular files (relative to the
    dir, with sizes, as the node compares them first) and the content digest."""

    name: str
    files: tuple[tuple[str, int], ...]
    digest: bytes          # md5 over sorted (relpath, 0, crc32(content), 0): erldeploy_relay:dir_digest
    size: int              # bytes of its files
    sha1: bytes = b""      # sha1 over sorted (relpath, 0, sha1(content), 0): a node with crypto loaded

    def digest_for(self, algo: str) -> bytes:
        return self.sha1 if algo == "sha" else self.digest


@dataclass(frozen=True)
class Contents:
    """What lacking() needs of a tarball: its units, and how big the whole is."""

    units: tuple[Unit, ...]
    size: int              # bytes of the compressed tarball

    def unit(self, name: str) -> Unit:
        return next(u for u in self.units if u.name == name)


@dataclass(frozen=True)
class Inventory:
    """What one node reported (erldeploy_relay:inventory/2)."""

    node: str
    host: str
    root: str
    releases_dir: str
    units: Mapping[str, bytes | str]     # unit -> digest, "missing" or "differs" (sizes/files differ)
    algo: str = "crc32"                  # the digest the node computed: sha (crypto loaded) or crc32


@dataclass(frozen=True)
class Delta:
    """One payload: the tarball's units a group of nodes lacks (full: all of them, so the
    original file is sent as it is)."""

    send: frozenset[str]
    skip: frozenset[str]
    nodes: tuple[str, ...]

    @property
    def full(self) -> bool:
        return not self.skip

    def keeps(self, member: str) -> bool:
        """Does this member go into the payload?"""
        u = unit_of(member)
        return u is None or u in self.send


def lacking(contents: Contents, inv: Inventory) -> frozenset[str]:
    """The units a node must receive: the ones it does not have with the same content."""
    return frozenset(u.name for u in contents.units if inv.units.get(u.name) != u.digest_for(inv.algo))


def other_builds(contents: Contents, inv: Inventory) -> frozenset[str]:
    """The units the node has with other content than the tarball's (an app rebuilt under an
    unchanged version): unpack_release extracts with keep_old_files, so the node would keep
    its files under the tarball's name whatever is sent. Refused before any change."""
    out = set()
    for u in contents.units:
        got = inv.units.get(u.name)
        if got is not None and got != "missing" and got != u.digest_for(inv.algo):
            out.add(u.name)
    return frozenset(out)


def plan_deltas(contents: Contents, invs: Sequence[Inventory]) -> tuple[Delta, ...]:
    """Nodes grouped by what they lack, in the order of their first node."""
    every = frozenset(u.name for u in contents.units)
    groups: dict[frozenset[str], list[str]] = {}
    for inv in invs:
        groups.setdefault(lacking(contents, inv), []).append(inv.node)
    return tuple(Delta(send, every - send, tuple(nodes)) for send, nodes in groups.items())


def share_roots(invs: Iterable[Inventory]) -> dict[str, str]:
    """follower -> leader, for nodes that write into the same releases dir on the same host:
    the file needs to arrive there once."""
    first: dict[tuple[str, str], str] = {}
    out: dict[str, str] = {}
    for inv in invs:
        key = (inv.host, inv.releases_dir.rstrip("/"))
        if key in first:
            out[inv.node] = first[key]
        else:
            first[key] = inv.node
    return out
