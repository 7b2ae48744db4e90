"""Keep what the node's own start script boots in step with RELEASES.

After make_permanent(VSN) (an install, or a rollback: the same call), a restart by the
release's script must start VSN. release_handler unpacks with keep_old_files, so files the
node already had are not replaced, and only releases/start_erl.data is rewritten:
- relx: bin/NAME hard-codes its version; copy bin/NAME-VSN over it (what relx's own
  upgrade does), atomically (copy beside it, then rename), keeping its mode.
- Distillery 2.1: bin/NAME reads var/start_erl.data, which nothing updates: write it.
- mix (and systools' bin/start): they read releases/start_erl.data: check it says VSN.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from ..errors import ReleaseError
from ..term.types import Atom
from .layouts import script_vsn, start_erl_vsn
from .terms import is_tagged, show

if TYPE_CHECKING:
    from .nodeops import NodeOps


async def keep_in_step(ops: NodeOps, node: str, root: str, releases_dir: str, name: str, vsn: str) -> list[str]:
    """Make the next boot start VSN; what was changed, one line each (empty: nothing to do)."""
    rpc = ops.rpc
    done: list[str] = []
    script, versioned, var = f"{root}/bin/{name}", f"{root}/bin/{name}-{vsn}", f"{root}/var/start_erl.data"
    r, cur, has_var = await asyncio.gather(rpc(node, "file", "read_file", [f"{releases_dir}/start_erl.data"]),
                                           rpc(node, "file", "read_file", [script]),
                                           rpc(node, "filelib", "is_regular", [var]))
    start_erl = r[1].decode() if is_tagged(r, "ok", 2) else None
    if start_erl is not None and start_erl_vsn(start_erl) != vsn:
        raise ReleaseError(f"{node}: releases/start_erl.data says {start_erl.strip()!r} after "
                           f"make_permanent({vsn})", node=node)
    if is_tagged(cur, "ok", 2) and script_vsn(cur[1].decode("utf-8", "replace")) not in (None, vsn):
        if await rpc(node, "filelib", "is_regular", [versioned]) is not True:
            raise ReleaseError(f"{node}: bin/{name} boots {script_vsn(cur[1].decode('utf-8', 'replace'))} "
                               f"and there is no bin/{name}-{vsn} to put in its place", node=node)
        tmp = f"{script}.erldeploy-new"
        for step in (("file", "copy", [versioned, tmp]), ("file", "rename", [tmp, script])):
            res = await rpc(node, *step)
            if not (res == "ok" or is_tagged(res, "ok")):
                raise ReleaseError(f"{node}: replacing bin/{name} with bin/{name}-{vsn} failed: {show(res)}",
                                   node=node)
            if step[1] == "copy":
                info = await rpc(node, "file", "read_file_info", [versioned])
                if is_tagged(info, "ok", 2):
                    await rpc(node, "file", "change_mode", [tmp, info[1][7]])   # #file_info.mode
        done.append(f"bin/{name} replaced by bin/{name}-{vsn}")
    if has_var is True:
        erts = (start_erl.split()[0] if start_erl else
                str(await rpc(node, "erlang", "system_info", [Atom("version")])))
        r = await rpc(node, "file", "write_file", [var, f"{erts} {vsn}\n".encode()])
        if r != "ok":
            raise ReleaseError(f"{node}: writing var/start_erl.data failed: {show(r)}", node=node)
        done.append(f"var/start_erl.data now says {erts} {vsn}")
    return done
