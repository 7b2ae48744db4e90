"""Entry point. The common commands (rpc, eval, ping, nodes) take a fast path that
parses argv itself (fastpath.py) and never imports asyncclick; everything else, and
anything the fast path does not recognise (--help, a typo, an unknown option), goes
through the asyncclick group below, whose commands load only when they run.

Exit codes: 0 success, 1 the operation failed on a node, 2 usage error,
3 could not connect or authenticate. Expected failures print one line, never a traceback.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

TYPE_CHECKING = False  # typing is not imported at run time: see cli/fastpath.py
if TYPE_CHECKING:
    from typing import Any

# name -> (module, attribute, one-line help). Modules load only when their command runs.
COMMANDS: dict[str, tuple[str, str, str]] = {
    "ping": ("pyrlang_deploy.cli.cmd_dist", "ping", "Connect to nodes and measure a round trip."),
    "rpc": ("pyrlang_deploy.cli.cmd_dist", "rpc", "Call MOD:FUN(ARGS...) on nodes; args are terms in the --syntax."),
    "eval": ("pyrlang_deploy.cli.cmd_dist", "eval_", "Evaluate Erlang (or --elixir) expressions on nodes."),
    "nodes": ("pyrlang_deploy.cli.cmd_dist", "nodes_", "List the members of the cluster."),
    "status": ("pyrlang_deploy.cli.cmd_release", "status", "What every node runs: releases, apps, drift."),
    "upload": ("pyrlang_deploy.cli.cmd_release", "upload", "Copy a release tarball to every node's releases dir."),
    "install": ("pyrlang_deploy.cli.cmd_release", "install", "Hot-upgrade nodes to release VSN."),
    "rollback": ("pyrlang_deploy.cli.cmd_release", "rollback", "Go back to the previous (or given) release."),
    "permanent": ("pyrlang_deploy.cli.cmd_release", "permanent", "Make release VSN permanent on nodes."),
    "remove": ("pyrlang_deploy.cli.cmd_release", "remove", "Remove release VSN from nodes."),
    "doctor": ("pyrlang_deploy.cli.cmd_doctor", "doctor", "Limits and risks of every node (ports, fds, heart, atoms...)."),
    "relup": ("pyrlang_deploy.cli.cmd_relup", "relup", "Generate appups and relup between two releases: OLD NEW -o OUT."),
    "lock": ("pyrlang_deploy.cli.cmd_lock", "lock", "Show or break the cluster-wide deploy lock."),
    "agent": ("pyrlang_deploy.cli.cmd_agent", "agent", "Show or unload the on-node agent."),
    "shell": ("pyrlang_deploy.cli.cmd_shell", "shell", "Python prompt with top-level await, connected to the cluster."),
}

EPILOG = """\b
Exit codes: 0 success, 1 failed on a node, 2 usage error, 3 could not connect/authenticate.
Global options work before or after the command name."""

_cli = None


def _build_cli():
    """The asyncclick group (built on first use: importing asyncclick costs ~25 ms)."""
    global _cli
    if _cli is not None:
        return _cli
    import importlib

    import asyncclick as click

    from .settings import global_options

    class LazyGroup(click.Group):
        def list_commands(self, ctx: click.Context) -> list[str]:
            return list(COMMANDS)

        def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
            entry = COMMANDS.get(name)
            if entry is None:
                return None
            module = importlib.import_module(entry[0])
            return getattr(module, entry[1])

        def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
            rows = [(name, help_) for name, (_, _, help_) in COMMANDS.items()]
            with formatter.section("Commands"):
                formatter.write_dl(rows)

    @click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]}, epilog=EPILOG)
    @click.version_option(package_name="pyrlang-deploy", prog_name="erldeploy")
    @global_options
    async def cli() -> None:
        """Hot upgrades for Erlang and Elixir clusters, over the distribution protocol.

        Joins the cluster as a hidden node with the cookie and calls release_handler,
        code and application on every node directly: no SSH, no scripts, no Erlang
        installation needed here.
        """

    _cli = cli
    return cli


def __getattr__(name: str) -> Any:
    if name == "cli":
        return _build_cli()
    raise AttributeError(name)


def _guarded(run: Callable[[], Any], json_mode: bool) -> int:
    """Run a command; expected failures become one line and their exit code."""
    from ..errors import ErldeployError

    try:
        rv = run()
    except KeyboardInterrupt:
        print("erldeploy: interrupted", file=sys.stderr)
        return 130
    except ErldeployError as e:
        from .output import report_error
        report_error(e, json_mode=json_mode)
        return e.exit_code
    return rv if isinstance(rv, int) else 0


def _only_help(args: list[str]) -> bool:
    """--help / --version (before any ``--``), or no arguments: click answers these
    while parsing, before any command's coroutine runs."""
    for a in args:
        if a == "--":
            return False
        if a in ("-h", "--help", "--version"):
            return True
    return not args


def _run_click(args: list[str]) -> int:
    import asyncclick as click

    def invoke():
        if _only_help(args):
            # parsing never suspends: run it without an event loop (asyncio's import
            # is most of what `erldeploy --help` would cost)
            from ..syncdrive import Suspended, run_sync
            try:
                return run_sync(_build_cli().main(args=args, prog_name="erldeploy", standalone_mode=False))
            except Suspended:
                pass  # something did suspend (nothing was printed yet): the normal way
        return _build_cli()(args=args, prog_name="erldeploy", standalone_mode=False, _anyio_backend="asyncio")

    def run():
        try:
            return invoke()
        except click.exceptions.Exit as e:
            return e.exit_code
        except click.ClickException as e:
            e.show()
            return e.exit_code
        except click.Abort:
            print("erldeploy: aborted", file=sys.stderr)
            return 130
    return _guarded(run, "--json" in args)


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else list(argv)
    from .fastpath import parse

    plan = parse(args)
    if plan is None:
        sys.exit(_run_click(args))
    sys.exit(_guarded(plan.run, plan.json))


if __name__ == "__main__":
    main()
