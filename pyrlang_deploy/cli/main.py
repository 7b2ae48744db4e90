"""Entry point: a lazy command group so `erldeploy --help` imports almost nothing.

Exit codes: 0 success, 1 the operation failed on a node, 2 usage error,
3 could not connect or authenticate. Expected failures print one line, never a traceback.
"""

from __future__ import annotations

import importlib
import sys

import asyncclick as click

from .settings import global_options

# name -> (module, attribute, one-line help). Modules load only when their command runs.
COMMANDS: dict[str, tuple[str, str, str]] = {
    "ping": ("pyrlang_deploy.cli.cmd_dist", "ping", "Connect to nodes and measure a round trip."),
    "rpc": ("pyrlang_deploy.cli.cmd_dist", "rpc", "Call MOD:FUN(ARGS...) on nodes; args are Erlang terms."),
    "eval": ("pyrlang_deploy.cli.cmd_dist", "eval_", "Evaluate Erlang expressions on nodes."),
    "nodes": ("pyrlang_deploy.cli.cmd_dist", "nodes_", "List the members of the cluster."),
    "status": ("pyrlang_deploy.cli.cmd_release", "status", "What every node runs: releases, apps, drift."),
    "upload": ("pyrlang_deploy.cli.cmd_release", "upload", "Copy a release tarball to every node's releases dir."),
    "install": ("pyrlang_deploy.cli.cmd_release", "install", "Hot-upgrade nodes to release VSN."),
    "rollback": ("pyrlang_deploy.cli.cmd_release", "rollback", "Go back to the previous (or given) release."),
    "permanent": ("pyrlang_deploy.cli.cmd_release", "permanent", "Make release VSN permanent on nodes."),
    "remove": ("pyrlang_deploy.cli.cmd_release", "remove", "Remove release VSN from nodes."),
    "lock": ("pyrlang_deploy.cli.cmd_lock", "lock", "Show or break the cluster-wide deploy lock."),
    "agent": ("pyrlang_deploy.cli.cmd_agent", "agent", "Show or unload the on-node agent."),
    "shell": ("pyrlang_deploy.cli.cmd_shell", "shell", "Python prompt with top-level await, connected to the cluster."),
}


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


EPILOG = """\b
Exit codes: 0 success, 1 failed on a node, 2 usage error, 3 could not connect/authenticate.
Global options work before or after the command name."""


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]}, epilog=EPILOG)
@click.version_option(package_name="pyrlang-deploy", prog_name="erldeploy")
@global_options
async def cli() -> None:
    """Hot upgrades for Erlang and Elixir clusters, over the distribution protocol.

    Joins the cluster as a hidden node with the cookie and calls release_handler,
    code and application on every node directly: no SSH, no scripts, no Erlang
    installation needed here.
    """


def main(argv: list[str] | None = None) -> None:
    from ..errors import ErldeployError

    args = sys.argv[1:] if argv is None else argv
    json_mode = "--json" in args
    try:
        rv = cli(args=args, prog_name="erldeploy", standalone_mode=False, _anyio_backend="asyncio")
    except click.exceptions.Exit as e:
        sys.exit(e.exit_code)
    except click.ClickException as e:
        e.show()
        sys.exit(e.exit_code)
    except click.Abort:
        print("erldeploy: aborted", file=sys.stderr)
        sys.exit(130)
    except KeyboardInterrupt:
        print("erldeploy: interrupted", file=sys.stderr)
        sys.exit(130)
    except ErldeployError as e:
        from .output import report_error
        report_error(e, json_mode=json_mode)
        sys.exit(e.exit_code)
    sys.exit(rv if isinstance(rv, int) else 0)


if __name__ == "__main__":
    main()
