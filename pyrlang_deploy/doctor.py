"""`erldeploy doctor`: each node's limits and risks, from one RPC per node.

Two halves:
  gather_facts(cluster, node) -> NodeFacts   I/O: one erl_eval of a fixed abstract form
  warnings_for(facts) -> list[str]           pure: the risks, one line each

The risks are the ones that take production nodes down without a hot upgrade being
at fault: a port table (sockets, files) that fills up (`+Q`, ERL_MAX_PORTS), an OS
file-descriptor limit below what the port table promises, no heart to restart a VM
that dies, an atom table that fills up (atoms are never collected; a full table kills
the VM), crash dumps nobody looked at.

`doctor_warnings(cluster, nodes)` is the entry point for other commands (install's
preflight shows these warnings; they never refuse).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from . import erl_expr as e

# Thresholds, as fractions of the limit (atoms earlier: they are never freed).
PORTS_FULL = 0.80
PROCESSES_FULL = 0.80
ETS_FULL = 0.80
ATOMS_FULL = 0.50
MIN_FDS = 65536          # below this, a busy node runs out of sockets before +Q says so


def _info(item: str) -> e.Form:
    return e.catch(e.call("erlang", "system_info", e.atom(item)))


# Every fact in one map expression; each one caught on its own, so a fact an older OTP
# lacks comes back as {'EXIT', _} (None here) instead of failing the whole call.
_FACTS = e.map_({
    "process_count": _info("process_count"),
    "process_limit": _info("process_limit"),
    "port_count": _info("port_count"),
    "port_limit": _info("port_limit"),
    "atom_count": _info("atom_count"),
    "atom_limit": _info("atom_limit"),
    "ets_count": _info("ets_count"),
    "ets_limit": _info("ets_limit"),
    "check_io": _info("check_io"),
    "otp_release": _info("otp_release"),
    "schedulers": _info("schedulers"),
    "schedulers_online": _info("schedulers_online"),
    "dist_buf_busy_limit": _info("dist_buf_busy_limit"),
    "heart": e.catch(e.call("erlang", "whereis", e.atom("heart"))),
    "net_ticktime": e.catch(e.call("net_kernel", "get_net_ticktime")),
    "memory": e.catch(e.call("erlang", "memory")),
    "wall_clock": e.catch(e.call("erlang", "statistics", e.atom("wall_clock"))),
    "root_dir": e.catch(e.call("code", "root_dir")),
    "cwd": e.catch(e.call("file", "get_cwd")),
    "root_dumps": e.catch(e.call("filelib", "wildcard", e.string("*.dump"), e.call("code", "root_dir"))),
    "cwd_dumps": e.catch(e.call("filelib", "wildcard", e.string("*.dump"))),
    "crash_dump_env": e.catch(e.call("os", "getenv", e.string("ERL_CRASH_DUMP"))),
    "crash_dump_env_exists": e.catch(e.call("filelib", "is_regular",
                                            e.call("os", "getenv", e.string("ERL_CRASH_DUMP")))),
})


@dataclass
class Limit:
    used: int | None
    limit: int | None

    @property
    def fraction(self) -> float | None:
        if self.used is None or not self.limit:
            return None
        return self.used / self.limit

    def to_json(self) -> dict[str, Any]:
        return {"used": self.used, "limit": self.limit}


@dataclass
class NodeFacts:
    """What one node reported. None: the node could not say (an older OTP, a failed call)."""

    node: str
    processes: Limit
    ports: Limit
    atoms: Limit
    ets: Limit
    fd_limit: int | None
    heart: bool
    net_ticktime: int | None
    dist_buf_busy_limit: int | None
    schedulers: int | None
    schedulers_online: int | None
    memory: dict[str, int] = field(default_factory=dict)
    uptime_s: float | None = None
    otp: str | None = None
    root_dir: str | None = None
    crash_dumps: list[str] = field(default_factory=list)


@dataclass
class NodeDoctor:
    facts: NodeFacts
    warnings: list[str]

    def to_json(self) -> dict[str, Any]:
        f = self.facts
        return {
            "node": f.node,
            "limits": {"processes": f.processes.to_json(), "ports": f.ports.to_json(),
                       "atoms": f.atoms.to_json(), "ets": f.ets.to_json(), "fds": {"limit": f.fd_limit}},
            "heart": f.heart,
            "warnings": list(self.warnings),
            "net_ticktime": f.net_ticktime,
            "dist_buf_busy_limit": f.dist_buf_busy_limit,
            "schedulers": {"total": f.schedulers, "online": f.schedulers_online},
            "memory": dict(f.memory),
            "uptime_s": f.uptime_s,
            "otp": f.otp,
            "root_dir": f.root_dir,
            "crash_dumps": list(f.crash_dumps),
        }


# --- the pure half ------------------------------------------------------------------

def warnings_for(f: NodeFacts) -> list[str]:
    """One line per risk, most urgent first; [] when the node looks healthy."""
    out: list[str] = []
    for name, lim, full, hint in (
        ("ports", f.ports, PORTS_FULL, "raise +Q (ERL_MAX_PORTS) and ulimit -n"),
        ("processes", f.processes, PROCESSES_FULL, "raise +P"),
        ("atoms", f.atoms, ATOMS_FULL, "atoms are never freed: find what creates them, or raise +t"),
        ("ets tables", f.ets, ETS_FULL, "raise +e (ERL_MAX_ETS_TABLES) or find the leak"),
    ):
        frac = lim.fraction
        if frac is not None and frac >= full:
            out.append(f"{name}: {lim.used} of {lim.limit} in use ({frac:.0%}): {hint}")
    if f.fd_limit is not None and f.fd_limit < MIN_FDS:
        out.append(f"file descriptors: the VM may open only {f.fd_limit} (under {MIN_FDS}): "
                   "raise ulimit -n (LimitNOFILE= under systemd)")
    if not f.heart:
        out.append("heart: not running: a VM that dies stays down (start it with -heart)")
    if f.crash_dumps:
        out.append(f"crash dumps left: {', '.join(f.crash_dumps)}")
    return out


def facts_from_term(node: str, t: dict[str, Any]) -> NodeFacts:
    """The map the node returned -> NodeFacts (pure: tests feed it literal maps)."""
    def num(key: str) -> int | None:
        v = t.get(key)
        return v if isinstance(v, int) and not isinstance(v, bool) else None

    fds = _max_fds(t.get("check_io"))
    tick = t.get("net_ticktime")
    if isinstance(tick, tuple) and len(tick) == 2 and isinstance(tick[1], int):
        tick = tick[1]  # {ongoing_change_to, New}
    wall = t.get("wall_clock")
    memory = {str(k): v for k, v in _proplist(t.get("memory")).items() if isinstance(v, int)}
    root = _text(t.get("root_dir"))
    cwd = _text(t.get("cwd")[1]) if _is_ok(t.get("cwd")) else None
    dumps: list[str] = []
    for base, key in ((root, "root_dumps"), (cwd, "cwd_dumps")):
        names = t.get(key)
        if base and isinstance(names, list):
            dumps += [_join(base, _text(n)) for n in names]
    env_dump = t.get("crash_dump_env")
    if t.get("crash_dump_env_exists") is True and isinstance(env_dump, (str, list)) and env_dump:
        p = _text(env_dump)
        dumps.append(p if p.startswith("/") or not cwd else _join(cwd, p))
    return NodeFacts(
        node=node,
        processes=Limit(num("process_count"), num("process_limit")),
        ports=Limit(num("port_count"), num("port_limit")),
        atoms=Limit(num("atom_count"), num("atom_limit")),
        ets=Limit(num("ets_count"), num("ets_limit")),
        fd_limit=fds if isinstance(fds, int) else None,
        heart=t.get("heart") not in (None, "undefined") and not e.is_exit(t.get("heart")),
        net_ticktime=tick if isinstance(tick, int) else None,
        dist_buf_busy_limit=num("dist_buf_busy_limit"),
        schedulers=num("schedulers"),
        schedulers_online=num("schedulers_online"),
        memory=memory,
        uptime_s=wall[0] / 1000 if isinstance(wall, tuple) and wall and isinstance(wall[0], int) else None,
        otp=_text(t["otp_release"]) if isinstance(t.get("otp_release"), (str, list)) else None,
        root_dir=root,
        crash_dumps=sorted(dict.fromkeys(dumps)),
    )


def _max_fds(check_io: Any) -> int | None:
    """system_info(check_io): one proplist per poll set since OTP 21 (one flat list before)."""
    if not isinstance(check_io, list):
        return None
    sets = check_io if check_io and all(isinstance(x, list) for x in check_io) else [check_io]
    found = [v for ps in sets if isinstance(v := _proplist(ps).get("max_fds"), int)]
    return min(found) if found else None


def _proplist(v: Any) -> dict[str, Any]:
    if not isinstance(v, list):
        return {}
    return {str(x[0]): x[1] for x in v if isinstance(x, tuple) and len(x) == 2 and isinstance(x[0], str)}


def _is_ok(v: Any) -> bool:
    return isinstance(v, tuple) and len(v) == 2 and v[0] == "ok"


def _text(v: Any) -> str:
    """A charlist, binary or str from the node as text; "" for anything else (an {'EXIT', _})."""
    from .release.terms import text

    return text(v) if isinstance(v, (str, list, bytes)) else ""


def _join(base: str, name: str) -> str:
    return name if name.startswith("/") else base.rstrip("/") + "/" + name


# --- the I/O half -------------------------------------------------------------------

async def gather_facts(cluster: Any, node: str) -> NodeFacts:
    """One round trip: every fact of `node`."""
    t = await e.eval_forms(cluster.rpc, node, [_FACTS])
    if not isinstance(t, dict):
        from .errors import RpcError
        raise RpcError(f"{node}: doctor got {t!r}", node=node, reason=t)
    return facts_from_term(node, {str(k): v for k, v in t.items()})


async def diagnose(cluster: Any, node: str) -> NodeDoctor:
    f = await gather_facts(cluster, node)
    return NodeDoctor(f, warnings_for(f))


async def doctor_all(cluster: Any, nodes: Iterable[str] | None = None):
    """{node: NodeResult[NodeDoctor]} for every (given) member, concurrently."""
    return await cluster.each(lambda n: diagnose(cluster, n), nodes)


async def doctor_warnings(cluster: Any, nodes: Iterable[str] | None = None) -> dict[str, list[str]]:
    """{node: [warning, ...]} for install's preflight: advice, never a refusal.
    A node that cannot answer gets one warning saying so instead of an exception."""
    res = await doctor_all(cluster, nodes)
    return {n: (r.value.warnings if r.ok else [f"doctor: {r.error}"]) for n, r in res.items()}


__all__ = ["Limit", "NodeDoctor", "NodeFacts", "diagnose", "doctor_all", "doctor_warnings",
           "facts_from_term", "gather_facts", "warnings_for"]
