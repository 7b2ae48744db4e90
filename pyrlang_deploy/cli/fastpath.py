"""The fast path: argv of the common commands parsed here, without asyncclick.

`erldeploy rpc -n NODE erlang node` is mostly interpreter start-up and imports; asyncclick
(and anyio under it) was a third of it. For ping, rpc, eval and nodes this module reads
the same options into the same `given` dict that settings._remember fills on the click
path, then runs the same code (dist_ops.py). For one plain-TCP node (no --cluster,
no TLS) that code runs on the blocking driver (erldist/blocking.py), since importing
asyncio alone costs several bare interpreter starts; anything else on asyncio. relup
likewise runs relup_ops.py, with no event loop at all unless it falls back to a cluster
node (issue 9's bench: its erl is started before anything heavy is imported). Anything
it does not know for certain - --help, --version, an unknown or misspelt option,
`-nNODE`, a value click would refuse, a wrong number of arguments - returns None, and
the click path decides (and words the usage error). ERLDEPLOY_NO_FAST=1 forces the
click path (the tests compare the two).

Modules this path loads write ``TYPE_CHECKING = False`` / ``if TYPE_CHECKING: from typing
import ...`` instead of importing typing (about 20M instructions, a sixth of the
command); annotations are strings (``from __future__ import annotations``), so nothing
needs it at run time. tests/test_cli_fast.py lists what the path must not load.

Click's rules kept here: global options stand before or after the command name; each
side is its own set of options, read in order (the group's, then the command's), and a
side that lacks --node / --cookie / --syntax on the command line reads the env var;
later values win, --node values add up.
"""

from __future__ import annotations

import os
from collections.abc import Callable

TYPE_CHECKING = False  # typing is not imported at run time: see cli/fastpath.py
if TYPE_CHECKING:
    from typing import Any

_VALUE_OPTS = {"-n": "node", "--node": "node", "--cookie": "cookie", "--cookie-file": "cookie_file",
               "--name": "name", "--timeout": "timeout", "--env": "env_name", "--epmd-port": "epmd_port",
               "--syntax": "syntax"}
_FLAG_OPTS = {"--cluster": "cluster", "--json": "json_output", "-q": "quiet", "--quiet": "quiet"}
_ENVVARS = {"node": "ERLDEPLOY_NODE", "cookie": "ERLDEPLOY_COOKIE", "syntax": "ERLDEPLOY_SYNTAX"}
# command -> (its own flags, positional count, more allowed)
_COMMANDS: dict[str, tuple[dict[str, str], int, bool]] = {
    "rpc": ({}, 2, True),
    "eval": ({"--elixir": "elixir"}, 1, False),
    "ping": ({}, 0, False),
    "nodes": ({}, 0, False),
    "relup": ({"--show": "show", "--restart": "restart", "--full": "full"}, 2, False),
}
# command -> its own options that take a value
_COMMAND_VALUES: dict[str, dict[str, str]] = {
    "relup": {"-o": "out", "--out": "out", "--appup-dir": "appup_dir"},
}


class Plan:
    """A command ready to run: `run()` returns the exit code."""

    __slots__ = ("command", "given", "positional", "flags", "values", "json")

    def __init__(self, command: str, given: dict[str, Any], positional: list[str],
                 flags: dict[str, bool], json: bool, values: dict[str, str] | None = None) -> None:
        self.command, self.given, self.positional, self.flags, self.json = command, given, positional, flags, json
        self.values = values or {}

    def run(self) -> int:
        if self.command == "relup":
            return self._relup()
        from . import dist_ops
        from .settings import print_warnings, resolve_given

        s = resolve_given(self.given)
        print_warnings(s)
        p = self.positional
        driver = _blocking_driver() if self.command != "nodes" and _one_plain_node(s) else None
        calls: dict[str, Callable[..., Any]] = {
            "rpc": lambda: dist_ops.rpc(s, p[0], p[1], p[2:], driver=driver),
            "eval": lambda: dist_ops.eval_(s, p[0], self.flags.get("elixir", False), driver=driver),
            "ping": lambda: dist_ops.ping(s, driver=driver),
            "nodes": lambda: dist_ops.nodes(s),
        }
        if driver is not None:
            from ..syncdrive import run_sync

            return run_sync(calls[self.command]())
        import asyncio

        return asyncio.run(calls[self.command]())

    def _relup(self) -> int:
        from . import relup_ops

        v, f = self.values, self.flags
        # erl first (its boot is most of the wait); not when the usage error is certain
        early = relup_ops.boot_erl(f.get("restart", False)) if "out" in v or f.get("show") else None
        pre = relup_ops.prefetch(*self.positional[:2]) if early is not None else None
        from pathlib import Path

        from .settings import print_warnings, resolve_given

        try:
            s = resolve_given(self.given)
        except BaseException:
            if early is not None:
                early.close()
            raise
        print_warnings(s)
        return relup_ops.run(s, Path(self.positional[0]), Path(self.positional[1]),
                             Path(v["out"]) if "out" in v else None,
                             appup_dir=Path(v["appup_dir"]) if "appup_dir" in v else None,
                             show=f.get("show", False), restart=f.get("restart", False), full=f.get("full", False),
                             early=early, pre=pre)


def _one_plain_node(s: Any) -> bool:
    """One node, no discovery, no TLS: what the blocking driver carries (see its module doc)."""
    return len(s.nodes) == 1 and not s.cluster and (s.reach is None or s.reach.tls is None)


def _blocking_driver() -> Any:
    from ..erldist.blocking import BlockingNode

    return BlockingNode


def parse(argv: list[str], environ: dict[str, str] | None = None) -> Plan | None:
    env = os.environ if environ is None else environ
    if env.get("ERLDEPLOY_NO_FAST") or env.get("ERLDEPLOY_SYNTAX", "elixir") not in ("elixir", "erlang", ""):
        return None
    from .reach_options import ENVVARS
    if any(env.get(v) for v in ENVVARS):   # TLS / epmd-less settings: click's path reads them
        return None
    sides: list[dict[str, Any]] = [{}, {}]   # options given before / after the command name
    side = sides[0]
    command: str | None = None
    flags: dict[str, bool] = {}
    values: dict[str, str] = {}
    positional: list[str] = []
    i, n = 0, len(argv)
    while i < n:
        a = argv[i]
        i += 1
        if command is not None and a == "--":
            positional += argv[i:]
            break
        if a.startswith("-") and a != "-":
            name, eq, inline = a.partition("=") if a.startswith("--") else (a, "", "")
            own_values = _COMMAND_VALUES.get(command, {}) if command is not None else {}
            if name in _VALUE_OPTS or name in own_values:
                if eq:
                    value = inline
                elif i < n:
                    value, i = argv[i], i + 1
                else:
                    return None
                if name in own_values:
                    values[own_values[name]] = value      # later ones win, as in click
                    continue
                key = _VALUE_OPTS[name]
                value = _convert(key, value)
                if value is None:
                    return None
                if key == "node":
                    side.setdefault("node", []).append(value)
                else:
                    side[key] = value
            elif name in _FLAG_OPTS and not eq:
                side[_FLAG_OPTS[name]] = True
            elif command is not None and name in _COMMANDS[command][0] and not eq:
                flags[_COMMANDS[command][0][name]] = True
            else:
                return None     # --help, --version, unknown: click's business
        elif command is None:
            if a not in _COMMANDS:
                return None
            command, side = a, sides[1]
        else:
            positional.append(a)
    if command is None:
        return None
    _, count, more = _COMMANDS[command]
    if len(positional) < count or (len(positional) > count and not more):
        return None
    if command == "relup" and not _relup_paths_ok(positional, values):
        return None
    return Plan(command, _given(sides, env), positional, flags, "--json" in argv, values)


def _relup_paths_ok(positional: list[str], values: dict[str, str]) -> bool:
    """What relup's click.Path types check (click words the error when one fails)."""
    out, appup_dir = values.get("out"), values.get("appup_dir")
    return (all(p and os.access(p, os.R_OK) for p in positional)
            and (out is None or (out != "" and not os.path.isdir(out)))
            and (appup_dir is None or os.path.isdir(appup_dir)))


def _convert(key: str, value: str) -> Any:
    """The value as click's option type makes it; None where click would refuse it."""
    try:
        if key == "timeout":
            return float(value)
        if key == "epmd_port":
            return int(value)
    except ValueError:
        return None
    if key == "syntax" and value not in ("elixir", "erlang"):
        return None
    return value


def _given(sides: list[dict[str, Any]], env: Any) -> dict[str, Any]:
    """settings._remember's record, side by side: command line, else the env var."""
    given: dict[str, Any] = {}
    for side in sides:
        nodes = side.get("node")
        if nodes is None and env.get(_ENVVARS["node"]):
            nodes = env[_ENVVARS["node"]].split()
        for v in nodes or ():
            for part in v.replace(",", " ").split():
                given.setdefault("node", [])
                if part not in given["node"]:
                    given["node"].append(part)
        for key, value in side.items():
            if key != "node":
                given[key] = value
                if key == "cookie":
                    given["cookie_source"] = "option"
        for key in ("cookie", "syntax"):
            if key not in side and env.get(_ENVVARS[key]):
                given[key] = env[_ENVVARS[key]]
                if key == "cookie":
                    given["cookie_source"] = "env"
    return given
