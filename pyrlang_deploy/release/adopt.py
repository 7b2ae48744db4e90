"""Adoption: make release_handler able to upgrade a node it does not really know.

A `mix release` ships no RELEASES file; release_handler then invents an entry for the
running release with no libs (an upgrade may work, its downgrade crashes). Adoption
writes RELEASES from the running release's own .rel (create_RELEASES: mix writes 3-tuple
app entries, which it accepts) and restarts release_handler under sasl_sup so that it
reads the file, then checks that which_releases lists the release's libs. A node whose
RELEASES exists but whose release_handler still holds the invented entry only needs the
restart. Done by `install` (shown in its plan and --dry-run), never by `status`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..errors import ReleaseError
from ..term.types import Atom
from .terms import is_tagged, show, text

if TYPE_CHECKING:
    from .nodeops import NodeOps
    from .plan import NodeTarget


async def adopt(ops: NodeOps, t: NodeTarget) -> str:
    """Adopt one node; returns what was done, one line."""
    node = t.node
    done = []
    if t.adoption == "create":
        r = await ops.rpc(node, "release_handler", "create_RELEASES", [t.root_dir, t.releases_dir, t.rel_file, []])
        if r != "ok":
            raise ReleaseError(f"{node}: create_RELEASES from {t.rel_file} failed: {show(r)}", node=node)
        done.append(f"RELEASES written from {t.rel_file}")
    sup, child = Atom("sasl_sup"), Atom("release_handler")
    r = await ops.rpc(node, "supervisor", "terminate_child", [sup, child])
    if r != "ok":
        raise ReleaseError(f"{node}: stopping release_handler under sasl_sup failed: {show(r)}", node=node)
    r = await ops.rpc(node, "supervisor", "restart_child", [sup, child])
    if not is_tagged(r, "ok"):
        raise ReleaseError(f"{node}: restarting release_handler under sasl_sup failed: {show(r)}", node=node)
    rels = await ops.rpc(node, "release_handler", "which_releases", [])
    bare = [text(x[1]) for x in rels if not x[2]]
    if bare:
        raise ReleaseError(f"{node}: adopted, yet release_handler lists {', '.join(bare)} without libs", node=node)
    done.append("release_handler restarted, it lists the libs of " + ", ".join(text(x[1]) for x in rels))
    return "; ".join(done)
