"""Elixir's consolidated protocols across a hot upgrade.

A mix release puts releases/VSN/consolidated first in the code path; release_handler's
update_paths does not know it, so after an upgrade the node would keep dispatching
protocols through the old release's consolidated beams. Switch the path entry to the
target release's directory and load the protocol modules whose code differs from what
runs. Done after make_permanent (install.Installer.make_permanent); a `rollback` is the
same switch back at its own make_permanent.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..errors import ReleaseError
from ..remote_eval import eval_erlang
from .terms import is_tagged, show, text

if TYPE_CHECKING:
    from .nodeops import NodeOps

# One evaluation on the node: paths end with releases/VSN/consolidated (mix writes them
# un-normalised, ROOT/lib/../releases/VSN/consolidated).
_SWITCH = """
Suffix = fun(V) -> "/releases/" ++ V ++ "/consolidated" end,
Old = [P || P <- code:get_path(), lists:suffix(Suffix(From), P)],
case {Old, filelib:is_dir(New)} of
    {[], _} -> none;
    {_, false} -> {error, {no_dir, New}};
    {_, true} ->
        [code:del_path(P) || P <- Old],
        true = code:add_patha(New),
        Mods = [list_to_atom(filename:basename(F, ".beam")) || F <- filelib:wildcard(New ++ "/*.beam")],
        Changed = [M || M <- Mods, code:is_loaded(M) =/= false,
                        case beam_lib:md5(New ++ "/" ++ atom_to_list(M) ++ ".beam") of
                            {ok, {M, Md5}} -> M:module_info(md5) =/= Md5;
                            _ -> false
                        end],
        Loaded = [{M, begin code:purge(M), code:load_file(M) end} || M <- Changed],
        {ok, [M || {M, {module, M}} <- Loaded], [{M, R} || {M, R} <- Loaded, element(1, R) =/= module]}
end.
"""


async def switch(ops: NodeOps, node: str, releases_dir: str, from_vsn: str, to_vsn: str) -> str | None:
    """None when the node has no consolidated dir of from_vsn in its path (not a mix
    release); else one line saying what was switched and loaded."""
    new = f"{releases_dir}/{to_vsn}/consolidated"
    if await ops.rpc(node, "filelib", "is_dir", [f"{releases_dir}/{from_vsn}/consolidated"]) is not True:
        return None          # one call for the releases that are not mix's
    r = await eval_erlang(ops.rpc, node, _SWITCH, {"From": from_vsn, "New": new})
    if r == "none":
        return None
    if not is_tagged(r, "ok", 3):
        raise ReleaseError(f"{node}: switching consolidated protocols {from_vsn} -> {to_vsn} failed: {show(r)}",
                           node=node)
    if r[2]:
        raise ReleaseError(f"{node}: loading consolidated protocols of {to_vsn} failed: {show(r[2])}", node=node)
    mods = ", ".join(text(m) for m in r[1]) or "none changed"
    return f"consolidated protocols of {to_vsn} in the code path (reloaded: {mods})"
