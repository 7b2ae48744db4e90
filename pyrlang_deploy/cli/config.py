"""Project file: named environments in `erldeploy.toml` or `[tool.erldeploy]` of `pyproject.toml`.

    # erldeploy.toml
    default_env = "staging"

    [env.staging]
    seeds = ["app1@10.0.0.5", "app2@10.0.0.6"]
    cookie_file = "~/.staging.cookie"     # or: cookie_env = "STAGING_COOKIE"
    releases = "_build/prod/rel/myapp/releases"   # where `install VSN` finds <name>-<VSN>.tar.gz
    tar = "_build/prod/myapp-{vsn}.tar.gz"        # or an explicit tarball pattern
    strategy = "canary"                  # canary | rolling | all
    batch = 2
    verify = "myapp:health"              # a zero-arity health call returning ok/true
    before = "'Elixir.MyApp.Release':migrate()"   # hooks: once before anything changes,
    after = "myapp:warm_caches()"        # once after every node is permanent,
    drain = "myapp:drain(30000)"         # on each node before it restarts (install --restart)
    timeout = 60
    ssl_dist_optfile = "/etc/myapp/ssl_dist.conf"  # TLS distribution (or tls_certfile/
                                                   # tls_keyfile/tls_cacertfile)
    dist_port = 9100                     # epmd-less nodes (ERL_DIST_PORT)
    syntax = "elixir"                    # terms in and out: elixir | erlang (default: ask the nodes)
    members = ["app1@10.0.0.5", "app2@10.0.0.6"]   # status flags a missing one (or: expect = 2)

The cookie itself is never stored in the project file: only where to find it.
"""

from __future__ import annotations

import os

from ..errors import UsageError
from ..record import Record, factory

TYPE_CHECKING = False  # typing is not imported at run time: see cli/fastpath.py
if TYPE_CHECKING:
    from typing import Any

_KNOWN = {"seeds", "cookie_file", "cookie_env", "releases", "tar", "strategy", "batch", "verify",
          "timeout", "epmd_port", "name", "lease", "syntax", "before", "after", "drain", "members", "expect",
          "ssl_dist_optfile", "tls_certfile", "tls_keyfile", "tls_cacertfile", "dist_port"}


class Environment(Record):
    _fields_ = (
        "name", "source", "seeds", "cookie_file", "cookie_env", "releases", "tar", "strategy", "batch",
        "verify", "timeout", "epmd_port", "node_name", "lease", "ssl_dist_optfile", "tls_certfile",
        "tls_keyfile", "tls_cacertfile", "dist_port", "syntax", "before", "after", "drain", "members",
        "expect",
    )
    _defaults = {
        "seeds": factory(list), "cookie_file": None, "cookie_env": None, "releases": None, "tar": None,
        "strategy": None, "batch": None, "verify": None, "timeout": None, "epmd_port": None,
        "node_name": None, "lease": None, "ssl_dist_optfile": None, "tls_certfile": None,
        "tls_keyfile": None, "tls_cacertfile": None, "dist_port": None, "syntax": None, "before": None,
        "after": None, "drain": None, "members": None, "expect": None,
    }
    name: str
    source: str
    seeds: list[str]
    cookie_file: str | None
    cookie_env: str | None
    releases: str | None
    tar: str | None
    strategy: str | None
    batch: int | None
    verify: str | None
    timeout: float | None
    epmd_port: int | None
    node_name: str | None   # key "name": our own node name in this environment
    lease: float | None
    # reaching the nodes (cli/reach_options.py): TLS distribution, epmd-less port
    ssl_dist_optfile: str | None
    tls_certfile: str | None
    tls_keyfile: str | None
    tls_cacertfile: str | None
    dist_port: int | None
    syntax: str | None
    before: str | None      # hooks (release/hooks.py): MOD:FUN(ARGS)
    after: str | None
    drain: str | None
    members: list[str] | None   # the nodes the cluster must have (status flags the missing)
    expect: int | None          # at least this many members


def find_project_file(start: str | None = None) -> tuple[str, dict[str, Any]] | None:
    """The nearest erldeploy.toml, or pyproject.toml with [tool.erldeploy], from cwd upwards.

    os.path rather than pathlib: this runs at every start and pathlib costs ~3 ms to import.
    """
    explicit = os.environ.get("ERLDEPLOY_CONFIG")
    if explicit:
        return explicit, _load(explicit, tool_table=os.path.basename(explicit) == "pyproject.toml")
    folder = os.path.realpath(os.fspath(start) if start else os.getcwd())
    while True:
        f = os.path.join(folder, "erldeploy.toml")
        if os.path.isfile(f):
            return f, _load(f, tool_table=False)
        f = os.path.join(folder, "pyproject.toml")
        if os.path.isfile(f) and _mentions_erldeploy(f):
            data = _load(f, tool_table=True)
            if data:
                return f, data
        parent = os.path.dirname(folder)
        if parent == folder:
            return None
        folder = parent


def _mentions_erldeploy(path: str) -> bool:
    """A cheap look before parsing: most pyproject.toml files have no [tool.erldeploy] table."""
    try:
        with open(path, "rb") as fh:
            return b"tool.erldeploy" in fh.read()
    except OSError:
        return False


def _load(path: str, *, tool_table: bool) -> dict[str, Any]:
    import tomllib  # only when a project file exists

    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except OSError as e:
        raise UsageError(f"cannot read {path}: {e.strerror}") from None
    except tomllib.TOMLDecodeError as e:
        raise UsageError(f"{path}: {e}") from None
    if tool_table:
        return data.get("tool", {}).get("erldeploy", {})
    return data


def load_environment(name: str | None, start: str | None = None) -> Environment | None:
    found = find_project_file(start)
    if found is None:
        if name:
            raise UsageError(f"--env {name}: no erldeploy.toml or [tool.erldeploy] in pyproject.toml found")
        return None
    path, data = found
    envs = data.get("env", {})
    name = name or data.get("default_env")
    if not name:
        return None
    if name not in envs:
        known = ", ".join(sorted(envs)) or "none"
        raise UsageError(f"no environment {name!r} in {path} (defined: {known})")
    raw = envs[name]
    if "cookie" in raw:
        raise UsageError(f"{path}: env.{name}: never put the cookie in the project file; use cookie_file or cookie_env")
    unknown = set(raw) - _KNOWN
    if unknown:
        raise UsageError(f"{path}: env.{name}: unknown key(s) {', '.join(sorted(unknown))}")
    seeds = raw.get("seeds", [])
    if isinstance(seeds, str):
        seeds = [seeds]
    env = Environment(name=name, source=path, seeds=list(seeds))
    for key in _KNOWN - {"seeds"}:
        if key in raw:
            setattr(env, "node_name" if key == "name" else key, raw[key])
    if env.members is not None and not (isinstance(env.members, list) and all(isinstance(m, str) for m in env.members)):
        raise UsageError(f"{path}: env.{name}: members must be a list of node names")
    if env.expect is not None and not (isinstance(env.expect, int) and env.expect > 0):
        raise UsageError(f"{path}: env.{name}: expect must be a positive number of members")
    if env.strategy and env.strategy not in ("canary", "rolling", "all"):
        raise UsageError(f"{path}: env.{name}: strategy must be canary, rolling or all")
    if env.syntax and env.syntax not in ("elixir", "erlang"):
        raise UsageError(f"{path}: env.{name}: syntax must be elixir or erlang")
    return env
