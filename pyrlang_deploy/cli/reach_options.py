"""Global options for reaching nodes: TLS distribution and epmd-less ports.

Each comes from the command line, its env var, or the environment's key in
erldeploy.toml, in that order:

    --ssl-dist-optfile FILE  ERLDEPLOY_SSL_DIST_OPTFILE  ssl_dist_optfile  (its client section)
    --tls-certfile FILE      ERLDEPLOY_TLS_CERTFILE      tls_certfile
    --tls-keyfile FILE       ERLDEPLOY_TLS_KEYFILE       tls_keyfile
    --tls-cacertfile FILE    ERLDEPLOY_TLS_CACERTFILE    tls_cacertfile
    --dist-port PORT         ERLDEPLOY_DIST_PORT         dist_port   (then ERL_DIST_PORT)

``-n NAME@HOST:PORT`` gives one node's port (no epmd asked for it). The --tls-*
paths override the optfile's; giving any of them turns TLS on. Only paths are
kept: the files are read when the first connection is made.
"""

from __future__ import annotations

import os

from ..erldist.address import parse_port, split_targets  # noqa: F401 (settings uses it from here)

TYPE_CHECKING = False  # typing is not imported at run time: see cli/fastpath.py
if TYPE_CHECKING:
    from typing import Any

    from ..erldist.carrier import Reach

NAMES = ("ssl_dist_optfile", "tls_certfile", "tls_keyfile", "tls_cacertfile", "dist_port")
TLS_KEYS = NAMES[:4]


# the env vars click reads for these options (the fast path leaves them to click)
ENVVARS = ("ERLDEPLOY_SSL_DIST_OPTFILE", "ERLDEPLOY_TLS_CERTFILE", "ERLDEPLOY_TLS_KEYFILE",
           "ERLDEPLOY_TLS_CACERTFILE", "ERLDEPLOY_DIST_PORT")


def options() -> list:
    import asyncclick as click  # the full command-line path only (fastpath.py)

    path = click.Path(dir_okay=False)
    return [
        click.option("--ssl-dist-optfile", type=path, envvar="ERLDEPLOY_SSL_DIST_OPTFILE", metavar="FILE",
                     help="TLS distribution: the nodes' ssl_dist_optfile (its client section is used)."),
        click.option("--tls-certfile", type=path, envvar="ERLDEPLOY_TLS_CERTFILE", metavar="FILE",
                     help="TLS distribution: our client certificate (PEM)."),
        click.option("--tls-keyfile", type=path, envvar="ERLDEPLOY_TLS_KEYFILE", metavar="FILE",
                     help="TLS distribution: the key of --tls-certfile (PEM)."),
        click.option("--tls-cacertfile", type=path, envvar="ERLDEPLOY_TLS_CACERTFILE", metavar="FILE",
                     help="TLS distribution: the CA the nodes' certificates must chain to."),
        click.option("--dist-port", type=int, envvar="ERLDEPLOY_DIST_PORT", metavar="PORT",
                     help="Epmd-less cluster: every node listens on PORT (ERL_DIST_PORT / -erl_epmd_port)."),
    ]


def resolve_reach(given: dict[str, Any], env: Any, ports: dict[str, int],
                  warnings: list[str] | None = None) -> Reach | None:
    """None when nothing is set: the node's default Reach (and ssl and asyncio, which
    carrier.py imports, stay unloaded for commands that may not connect at all: relup)."""
    if not ports and not os.environ.get("ERL_DIST_PORT") and not any(
            given.get(k) is not None or (env is not None and getattr(env, k, None) is not None) for k in NAMES):
        return None
    from ..erldist import tls
    from ..erldist.carrier import Reach

    def pick(key: str) -> Any:
        value = given.get(key)
        if value is None and env is not None:
            value = getattr(env, key, None)
        return value

    dist_port = pick("dist_port")
    if dist_port is None and os.environ.get("ERL_DIST_PORT"):
        dist_port = os.environ["ERL_DIST_PORT"]
    if dist_port is not None:
        dist_port = parse_port(dist_port, "--dist-port")
    optfile = pick("ssl_dist_optfile")
    base = tls.from_optfile(os.path.expanduser(optfile)) if optfile else None
    opts = tls.merge(base, pick("tls_certfile"), pick("tls_keyfile"), pick("tls_cacertfile"))
    if opts is not None and warnings is not None:
        warnings.extend(f"{opts.source}: {note}" for note in opts.notes)
        if not opts.verify:
            warnings.append(f"{opts.source}: {{verify, verify_none}}: the nodes' certificates are not checked")
    return Reach(tls=opts, dist_port=dist_port, ports=ports)
