"""relup: build the upgrade tarball (appups + relup) between two releases.

The click face of the command; the work and the output are relup_ops.py's (the fast
path, fastpath.py, calls it without asyncclick)."""

from __future__ import annotations

from pathlib import Path

import asyncclick as click

from .runner import settings_of
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
    import asyncio

    from . import relup_ops

    s = settings_of(ctx)
    # in a thread: the cluster fallback runs its own event loop (relup_ops.on_cluster)
    return await asyncio.to_thread(relup_ops.run, s, old, new, out, appup_dir=appup_dir, show=show,
                                   restart=restart, full=full)
