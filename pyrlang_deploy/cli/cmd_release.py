"""status, upload, install, rollback, permanent, remove."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import asyncclick as click

from .output import emit_json
from .runner import open_cluster, report_per_node, settings_of
from .settings import global_options

# --- status -------------------------------------------------------------------

@click.command()
@global_options
@click.option("--expect", type=click.IntRange(min=1), default=None, metavar="N",
              help="The cluster should have N members (default: the environment's expect/members).")
@click.pass_context
async def status(ctx: click.Context, expect: int | None) -> int:
    """What every node runs: releases and their states, applications, drift.

    Exit 1 when a node is unreachable, an expected member is missing (--expect N, the
    environment's members/expect, or a node the members saw and lost), or the cluster
    is not on one permanent release.
    """
    s = settings_of(ctx)
    from ..release import membership
    from ..release.status import cluster_status

    env = s.environment
    expected = membership.Expected(
        names=tuple(env.members) if env and env.members else (),
        count=expect if expect is not None else (env.expect if env else None),
        source="--expect" if expect is not None else (f"{env.name} in {env.source}" if env else ""))
    async with open_cluster(s, need_all=False) as c:
        if not c.members:
            raise next(iter(c.unreachable.values()))
        st = await cluster_status(c)
        st.missing = await membership.check(c, c.members, list(c.unreachable), expected)
        from ..release.converge import status_hint
        st.converge = await status_hint(c, st)
    if s.json:
        emit_json(st.to_json())
    else:
        from .render import render_status
        render_status(st, quiet=s.quiet)
    return 0 if st.ok else 1


# --- upload -------------------------------------------------------------------

@click.command()
@global_options
@click.argument("tar", type=click.Path(dir_okay=False, exists=True, path_type=Path))
@click.option("--no-agent", is_flag=True, help="Upload with plain RPC instead of the on-node agent.")
@click.option("--delta", is_flag=True,
              help="Stage only what each node lacks (its missing lib dirs and releases/), not the whole file.")
@click.pass_context
async def upload(ctx: click.Context, tar: Path, no_agent: bool, delta: bool) -> int:
    """Copy a release tarball to every node's releases dir (checksum verified, atomic; a retry is a no-op)."""
    s = settings_of(ctx)
    from ..release.report import Event
    from ..release.tarball import inspect_tarball
    from ..release.transfer import upload_everywhere
    from .render import progress_renderer

    info = inspect_tarball(tar)
    printer = progress_renderer(s, steps=("upload",))
    try:
        async with open_cluster(s) as c:   # upload_everywhere holds the deploy lock itself
            res = await upload_everywhere(
                c, info, agent=not no_agent, delta=delta,
                progress=lambda node, done, total: printer(Event(node, "upload", "progress", done=done, total=total)))
    finally:
        printer.close()
    return report_per_node(
        s, res, lambda v: v.describe(),
        tarball=str(tar), sha256=info.sha256)


# --- install / rollback ---------------------------------------------------------

def _install_options(f):
    from ..release.plan import STRATEGIES

    f = click.option("--strategy", type=click.Choice(list(STRATEGIES)), default=None,
                     help="canary (default): one node, then the rest in growing waves (batch, 2x, 4x...); "
                          "rolling: waves of --batch; all: at once.")(f)
    f = click.option("--batch", type=int, default=None,
                     help="Nodes in the first wave after the canary; rolling: in every wave (default 1).")(f)
    f = click.option("--max-parallel", type=int, default=0, metavar="N",
                     help="No wave larger than N nodes (default: no cap).")(f)
    f = click.option("--verify", "verify", metavar="MOD:FUN", default=None,
                     help="Health call after each node's install; must return ok or true.")(f)
    f = click.option("--dry-run", is_flag=True, help="Run the preflight and print the plan; change nothing.")(f)
    f = click.option("--no-agent", is_flag=True,
                     help="Drive release_handler with plain RPC (no code loaded on the nodes, no lease).")(f)
    f = click.option("--lease", type=float, default=None, metavar="SECONDS",
                     help="Agent lease: a node rolls itself back if the controller is silent this long (default 30).")(f)
    f = click.option("--install-timeout", type=float, default=600.0, metavar="SECONDS",
                     help="How long one node's install_release may take (default 600).")(f)
    f = click.option("--replace-unpacked", is_flag=True,
                     help="Where VSN is unpacked from another build, remove it and unpack the tarball's.")(f)
    f = click.option("--restart", is_flag=True,
                     help="Restart each node into VSN (release_handler through heart) instead of a hot "
                          "upgrade: for releases with no usable relup.")(f)
    f = click.option("--drain", metavar="MOD:FUN(ARGS)", default=None,
                     help="With --restart: call on each node before it restarts.")(f)
    f = click.option("--before", metavar="MOD:FUN(ARGS)", default=None,
                     help="Call once, on the first node to change, before anything changes (migrations).")(f)
    f = click.option("--after", metavar="MOD:FUN(ARGS)", default=None,
                     help="Call once, on that node, after every node is permanent.")(f)
    return f


def _options_from(s, strategy, batch, verify, dry_run, no_agent, lease, install_timeout, replace_unpacked=False,
                  tar=None, restart=False, drain=None, before=None, after=None, max_parallel=0) -> dict[str, Any]:
    from ..release.hooks import parse_hook
    from ..release.install import parse_verify

    env = s.environment
    return dict(
        tar=tar,
        strategy=strategy or (env.strategy if env and env.strategy else "canary"),
        batch=batch or (env.batch if env and env.batch else 1),
        verify=parse_verify(verify or (env.verify if env else None)),
        dry_run=dry_run, agent=not no_agent,
        lease=lease or (env.lease if env and env.lease else 30.0),
        install_timeout=install_timeout, replace_unpacked=replace_unpacked, max_parallel=max_parallel,
        restart=restart,
        # the environment's drain only applies to restarts
        drain=parse_hook("drain", drain or (env.drain if env and restart else None)),
        before=parse_hook("before", before or (env.before if env else None)),
        after=parse_hook("after", after or (env.after if env else None)),
    )


def _find_tar(s, vsn: str) -> Path | None:
    """--tar, else the environment's tarball pattern / releases dir."""
    env = s.environment
    if not env:
        return None
    if env.tar:
        p = Path(env.tar.format(vsn=vsn)).expanduser()
        return p if p.exists() else None
    if env.releases:
        hits = sorted(Path(env.releases).expanduser().glob(f"*-{vsn}.tar.gz")) + \
            sorted(Path(env.releases).expanduser().glob(f"{vsn}/*.tar.gz"))
        return hits[0] if hits else None
    return None


@click.command()
@global_options
@click.argument("vsn")
@click.option("--tar", type=click.Path(dir_okay=False, exists=True, path_type=Path), default=None,
              help="Release tarball to upload where VSN is not unpacked yet.")
@_install_options
@click.pass_context
async def install(ctx: click.Context, vsn: str, tar: Path | None, **kw: Any) -> int:
    """Hot-upgrade the nodes to release VSN.

    Preflight on every node before touching any; then upload, unpack, install and
    verify node by node (canary first); make permanent only when every node is
    verified. On failure the upgraded nodes are rolled back and every node's final
    state is printed.
    """
    s = settings_of(ctx)
    opts = _options_from(s, tar=tar or _find_tar(s, vsn), **kw)
    from ..release.install import install as do_install
    return await _run_transition(s, opts, lambda c, o: do_install(c, vsn, **o))


@click.command()
@global_options
@click.argument("vsn", required=False)
@_install_options
@click.pass_context
async def rollback(ctx: click.Context, vsn: str | None, **kw: Any) -> int:
    """Go back to the previous release (or VSN) on every node, through the relup's down section."""
    s = settings_of(ctx)
    opts = _options_from(s, **kw)
    from ..release.install import rollback as do_rollback
    return await _run_transition(s, opts, lambda c, o: do_rollback(c, vsn, **o))


async def _run_transition(s, opts: dict[str, Any], action) -> int:
    from .render import progress_renderer, render_install_report

    printer = progress_renderer(s)
    opts["on_event"] = printer
    opts["on_output"] = _hook_output(s)
    pending = None
    if opts.get("tar") is not None:
        # read and check the tarball in a thread while we connect (hashing and zlib drop the GIL)
        import asyncio

        from ..release.tarball import inspect_tarball
        pending = asyncio.ensure_future(asyncio.to_thread(inspect_tarball, Path(opts["tar"])))
    try:
        async with open_cluster(s, need_all=False) as c:
            if pending is not None:
                opts["tar"] = await pending
            report = await action(c, opts)
    finally:
        printer.close()
        if pending is not None and not pending.done():
            pending.cancel()
    if s.json:
        emit_json(report.to_json())
    else:
        render_install_report(report, quiet=s.quiet)
    return report.exit_code


def _hook_output(s):
    """A hook's io output as it comes, each line led by its node and slot: on stdout for
    people, on stderr with --json (stdout stays JSON)."""
    import sys

    def write(slot: str, node: str, text: str) -> None:
        stream = sys.stderr if s.json else sys.stdout
        for line in text.splitlines():
            stream.write(f"{node} {slot}| {line}\n")
        stream.flush()
    return write


# --- permanent / remove ---------------------------------------------------------

@click.command()
@global_options
@click.argument("vsn")
@click.pass_context
async def permanent(ctx: click.Context, vsn: str) -> int:
    """Make release VSN permanent (what a restart boots) on every node; VSN must be current there."""
    return await _manage(ctx, "make_permanent_everywhere", vsn)


@click.command()
@global_options
@click.argument("vsn")
@click.pass_context
async def remove(ctx: click.Context, vsn: str) -> int:
    """Remove release VSN from every node (refused for the current and the permanent release)."""
    return await _manage(ctx, "remove_everywhere", vsn)


async def _manage(ctx: click.Context, action: str, vsn: str) -> int:
    from ..release import manage

    s = settings_of(ctx)
    async with open_cluster(s) as c:   # the operation holds the deploy lock itself
        res = await getattr(manage, action)(c, vsn)
    return report_per_node(s, res, str)
