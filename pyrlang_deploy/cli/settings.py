"""Global options and how they resolve into one Settings object.

Users type global options both before and after the command name
(`erldeploy -n a@h rpc erlang node` and `erldeploy rpc -n a@h erlang node`), so every
command carries the same options; values given later on the line win, `--node` values add up.
The cookie's precedence: --cookie, ERLDEPLOY_COOKIE, --cookie-file, the environment's
setting in the project file, ~/.erlang.cookie.
"""

from __future__ import annotations

import os
import socket
import sys

from ..cookie import read_cookie_file
from ..errors import UsageError
from ..record import Record, factory
from . import reach_options

TYPE_CHECKING = False  # typing is not imported at run time: see cli/fastpath.py
if TYPE_CHECKING:
    from typing import Any

# asyncclick loads only on the full command-line path: fastpath.py parses the common
# commands' argv itself into the same `given` dict, and resolve_given() does the rest.

_META_KEY = "erldeploy.globals"
SYNTAXES = ("elixir", "erlang")


def _remember(ctx: Any, param: Any, value: Any) -> Any:
    """Record options the user actually gave (command line or env), later ones winning."""
    import asyncclick as click

    source = ctx.get_parameter_source(param.name)
    given = ctx.find_root().meta.setdefault(_META_KEY, {})
    if param.name == "node":
        if value:
            given.setdefault("node", [])
            for v in value:
                for part in v.replace(",", " ").split():
                    if part not in given["node"]:
                        given["node"].append(part)
        return value
    if source in (click.core.ParameterSource.COMMANDLINE, click.core.ParameterSource.ENVIRONMENT):
        given[param.name] = value
        if param.name == "cookie":
            given["cookie_source"] = "option" if source == click.core.ParameterSource.COMMANDLINE else "env"
    return value


def global_options(f):
    """Attach the global options to a group or command (values land in ctx meta, not in kwargs)."""
    import asyncclick as click

    opts = [
        click.option("-n", "--node", multiple=True, envvar="ERLDEPLOY_NODE", metavar="NODE",
                     help="Target node (repeatable; env ERLDEPLOY_NODE, space or comma separated)."),
        click.option("--cluster", is_flag=True, default=None,
                     help="Discover every member of the cluster from the given nodes and act on all of them."),
        click.option("--cookie", envvar="ERLDEPLOY_COOKIE", metavar="COOKIE",
                     help="Distribution cookie (env ERLDEPLOY_COOKIE). Visible in the process list: prefer the env var or a file."),
        click.option("--cookie-file", type=click.Path(dir_okay=False), metavar="FILE",
                     help="File holding the cookie (default ~/.erlang.cookie)."),
        click.option("--name", metavar="NAME", help="Our own node name (default: a unique erldeploy-* name per run)."),
        click.option("--timeout", type=float, metavar="SECONDS", help="Per-call timeout in seconds (default 30)."),
        click.option("--json", "json_output", is_flag=True, default=None, help="Machine-readable JSON on stdout."),
        click.option("-q", "--quiet", is_flag=True, default=None, help="Only errors and the final result."),
        click.option("--env", "env_name", metavar="ENV", help="Named environment from erldeploy.toml / pyproject.toml."),
        click.option("--epmd-port", type=int, metavar="PORT", help="epmd port on the target hosts (env ERL_EPMD_PORT, default 4369)."),
        click.option("--syntax", type=click.Choice(SYNTAXES), envvar="ERLDEPLOY_SYNTAX",
                     help="Terms in and out as elixir or erlang (env ERLDEPLOY_SYNTAX, toml key syntax; "
                          "default: elixir when the nodes run the elixir application)."),
    ] + reach_options.options()
    for opt in reversed(opts):
        f = opt(f)
    # every option records itself and stays out of the callback's kwargs
    for p in f.__click_params__:
        if p.name in {"node", "cluster", "cookie", "cookie_file", "name", "timeout", "json_output",
                      "quiet", "env_name", "epmd_port", "syntax", *reach_options.NAMES}:
            p.expose_value = False
            p.callback = _remember
    return f


class Settings(Record):
    _fields_ = (
        "nodes", "cluster", "cookie", "name", "timeout", "json", "quiet", "env_name", "epmd_port", "syntax",
        "environment", "reach", "warnings",
    )
    _defaults = {
        "nodes": factory(list), "cluster": False, "cookie": None, "name": None, "timeout": 30.0,
        "json": False, "quiet": False, "env_name": None, "epmd_port": None, "syntax": None,
        "environment": None, "reach": None, "warnings": factory(list),
    }
    nodes: list[str]
    cluster: bool
    cookie: str | None
    name: str | None
    timeout: float
    json: bool
    quiet: bool
    env_name: str | None
    epmd_port: int | None
    syntax: str | None      # elixir | erlang; None: decide from the nodes (cli/syntax.py)
    environment: Any  # config.Environment when --env or a default env applies
    reach: Any  # erldist.carrier.Reach: TLS and ports (see reach_options)
    warnings: list[str]

    def require_nodes(self) -> list[str]:
        if not self.nodes:
            raise UsageError("no node given: use -n NODE (or ERLDEPLOY_NODE, or an environment with seeds)")
        return self.nodes

    def require_cookie(self) -> str:
        if not self.cookie:
            raise UsageError("no cookie: use ERLDEPLOY_COOKIE, --cookie-file, --cookie or ~/.erlang.cookie")
        return self.cookie


def qualify(node: str) -> str:
    """`demo1` -> `demo1@<short hostname>`, the way `erl -sname demo1` names itself."""
    if "@" in node:
        return node
    return f"{node}@{socket.gethostname().split('.')[0]}"


def resolve(ctx: Any) -> Settings:
    return resolve_given(ctx.find_root().meta.get(_META_KEY, {}))


def resolve_given(given: dict[str, Any]) -> Settings:
    """The options as given (command line, env) + the project file -> Settings."""
    s = Settings()
    s.json = bool(given.get("json_output"))
    s.quiet = bool(given.get("quiet"))
    s.cluster = bool(given.get("cluster"))
    s.name = given.get("name")
    s.env_name = given.get("env_name")

    env = None
    from . import config  # small module, stdlib only
    env = config.load_environment(s.env_name)
    s.environment = env

    nodes = [qualify(n) for n in given.get("node", [])] or [qualify(n) for n in (env.seeds if env else [])]
    s.nodes, ports = reach_options.split_targets(nodes)
    s.reach = reach_options.resolve_reach(given, env, ports, s.warnings)
    if given.get("timeout") is not None:
        s.timeout = float(given["timeout"])
        if not 0 < s.timeout < float("inf"):  # 0, negative, nan, inf
            raise UsageError(f"--timeout must be a positive number of seconds, not {given['timeout']}")
    elif env and env.timeout:
        s.timeout = env.timeout
    port = given.get("epmd_port") or (env.epmd_port if env else None)
    if port is None and os.environ.get("ERL_EPMD_PORT"):
        try:
            port = int(os.environ["ERL_EPMD_PORT"])
        except ValueError:
            raise UsageError("ERL_EPMD_PORT is not a number") from None
    s.epmd_port = port
    s.syntax = given.get("syntax") or (env.syntax if env else None)

    # cookie precedence
    if given.get("cookie"):
        s.cookie = given["cookie"]
        if given.get("cookie_source") == "option":
            s.warnings.append("--cookie is visible to other users in the process list; prefer ERLDEPLOY_COOKIE or --cookie-file")
    elif given.get("cookie_file"):
        s.cookie = read_cookie_file(os.path.expanduser(given["cookie_file"]), warnings=s.warnings)
    elif env and env.cookie_file:
        s.cookie = read_cookie_file(os.path.expanduser(env.cookie_file), warnings=s.warnings)
    elif env and env.cookie_env:
        s.cookie = os.environ.get(env.cookie_env) or None
        if s.cookie is None:
            raise UsageError(f"environment {env.name!r} takes the cookie from ${env.cookie_env}, which is not set")
    else:
        s.cookie = read_cookie_file(required=False, warnings=s.warnings)
    return s


def print_warnings(settings: Settings) -> None:
    for w in settings.warnings:
        print(f"erldeploy: warning: {w}", file=sys.stderr)
