"""What every node really runs: one snapshot per node, gathered with concurrent RPCs.

JSON schema (`erldeploy status --json`), "schema": "erldeploy.status/1":
  ok                bool   every node reachable and the cluster on one release
  one_release       bool   every reachable node runs the same release, and it is permanent
  release           {name, vsn} | null   the common current release when one_release
  problems          [str]  human sentences: unreachable nodes, drift, not-permanent releases
  nodes             [NodeStatus]: node, reachable, error, otp_release, erts_version,
                    uptime_seconds, root_dir, releases_dir, releases_file (bool),
                    mix_release (bool), release_handler (bool), cwd, cwd_ok (bool: false
                    when RELEASES has relative lib paths and cwd is not the root),
                    releases [{name, vsn, state}] (state: unpacked|current|permanent|old),
                    current, permanent, current_is_permanent,
                    applications [{name, vsn, description}], loaded_not_running [{name, vsn}],
                    modified_modules [str], booted (init:script_id's vsn), next_boot (what a
                    restart by the release's own script starts) and next_boot_by (the file
                    that decides: bin/NAME, var/start_erl.data or releases/start_erl.data),
                    adoption (null | "create": a mix release without RELEASES | "restart":
                    release_handler holds an invented entry; `install` adopts, `status` never)
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..errors import ErldeployError
from . import snapshot
from .layouts import next_boot
from .terms import current_and_permanent, is_tagged, text

if TYPE_CHECKING:
    from ..cluster import Cluster
    from .nodeops import NodeOps

SCHEMA = "erldeploy.status/1"


@dataclass
class ReleaseInfo:
    name: str
    vsn: str
    state: str  # unpacked | current | permanent | old
    libs: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "vsn": self.vsn, "state": self.state}


@dataclass
class AppInfo:
    name: str
    vsn: str
    description: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "vsn": self.vsn, "description": self.description}


@dataclass
class NodeStatus:
    node: str
    reachable: bool = True
    error: str | None = None
    otp_release: str = ""
    erts_version: str = ""
    uptime_seconds: float = 0.0
    root_dir: str = ""
    releases_dir: str = ""
    releases_file: bool = False
    release_handler: bool = False
    cwd: str = ""
    relative_lib_paths: bool = False
    releases: list[ReleaseInfo] = field(default_factory=list)
    applications: list[AppInfo] = field(default_factory=list)
    loaded_not_running: list[AppInfo] = field(default_factory=list)
    modified_modules: list[str] = field(default_factory=list)
    booted: str | None = None          # init:script_id(): the release this emulator booted
    next_boot: str | None = None       # what a restart by the release's own script starts
    next_boot_by: str = ""             # the file that decides it (layouts.next_boot)
    rel_file: str | None = None        # the running release's .rel on the node (adoption's input)

    @property
    def adoption(self) -> str | None:
        """What install must do before release_handler can upgrade this node:
        "create" (no RELEASES file, as `mix release` ships: create_RELEASES, then restart
        release_handler), "restart" (RELEASES exists but release_handler still holds the
        entry it invented, with no libs), or None."""
        if not self.reachable or not self.release_handler:
            return None
        if not self.releases_file:
            return "create"
        return "restart" if any(not r.libs for r in self.releases) else None

    @property
    def boot_mismatch(self) -> str | None:
        """One line when a restart would not start the permanent release."""
        perm = self.permanent
        if self.next_boot is None or perm is None or self.next_boot == perm:
            return None
        return (f"booted {self.booted or '?'}, RELEASES says {perm}: a restart starts {self.next_boot} "
                f"({self.next_boot_by})")

    @property
    def permanent(self) -> str | None:
        return current_and_permanent((r.vsn, r.state) for r in self.releases)[1]

    @property
    def current(self) -> str | None:
        """The release running now: `current` when one is installed but not permanent."""
        return current_and_permanent((r.vsn, r.state) for r in self.releases)[0]

    @property
    def release_name(self) -> str | None:
        cur = self.current
        return next((r.name for r in self.releases if r.vsn == cur), None)

    @property
    def current_is_permanent(self) -> bool:
        return self.current is not None and self.current == self.permanent

    @property
    def cwd_ok(self) -> bool:
        """Relative lib paths in RELEASES resolve against the cwd: it must be the root."""
        return not self.relative_lib_paths or self.cwd.rstrip("/") == self.root_dir.rstrip("/")

    @property
    def mix_release(self) -> bool:
        """No RELEASES file (as `mix release` ships): release_handler invents an entry without libs."""
        return self.reachable and (not self.releases_file or any(not r.libs for r in self.releases))

    def release(self, vsn: str) -> ReleaseInfo | None:
        return next((r for r in self.releases if r.vsn == vsn), None)

    def app_versions(self) -> dict[str, str]:
        return {a.name: a.vsn for a in self.applications}

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"node": self.node, "reachable": self.reachable, "error": self.error}
        if not self.reachable:
            return doc
        doc.update({
            "otp_release": self.otp_release, "erts_version": self.erts_version,
            "uptime_seconds": round(self.uptime_seconds, 3), "root_dir": self.root_dir,
            "releases_dir": self.releases_dir, "releases_file": self.releases_file,
            "mix_release": self.mix_release, "release_handler": self.release_handler, "cwd": self.cwd,
            "cwd_ok": self.cwd_ok,
            "releases": [r.to_json() for r in self.releases],
            "current": self.current, "permanent": self.permanent,
            "current_is_permanent": self.current_is_permanent,
            "applications": [a.to_json() for a in self.applications],
            "loaded_not_running": [{"name": a.name, "vsn": a.vsn} for a in self.loaded_not_running],
            "modified_modules": self.modified_modules,
            "booted": self.booted, "next_boot": self.next_boot, "next_boot_by": self.next_boot_by or None,
            "adoption": self.adoption,
        })
        return doc


@dataclass
class ClusterStatus:
    nodes: list[NodeStatus]
    missing: list[str] = field(default_factory=list)    # expected members not there (membership.py)
    converge: str | None = None                          # after a split: the command that ends it (converge.py)

    @property
    def reachable(self) -> list[NodeStatus]:
        return [n for n in self.nodes if n.reachable]

    @property
    def releases_in_use(self) -> dict[tuple[str | None, str | None], list[str]]:
        """(release name, current vsn) -> nodes running it."""
        out: dict[tuple[str | None, str | None], list[str]] = {}
        for n in self.reachable:
            out.setdefault((n.release_name, n.current), []).append(n.node)
        return out

    @property
    def one_release(self) -> bool:
        return (len(self.releases_in_use) == 1 and bool(self.reachable)
                and all(n.current_is_permanent for n in self.reachable))

    @property
    def ok(self) -> bool:
        return self.one_release and all(n.reachable for n in self.nodes) and not self.missing

    def problems(self) -> list[str]:
        out = list(self.missing)
        for n in self.nodes:
            if not n.reachable:
                out.append(f"{n.node}: unreachable: {n.error}")
        for n in self.reachable:
            if not n.release_handler:
                out.append(f"{n.node}: release_handler is not running (sasl not started)")
            elif n.current and not n.current_is_permanent:
                out.append(f"{n.node}: current release {n.current} is not permanent "
                           f"(a restart boots {n.permanent})")
            if not n.cwd_ok:
                out.append(f"{n.node}: cwd {n.cwd} is not the release root {n.root_dir} and RELEASES "
                           "has relative lib paths: release_handler would fail with no_such_file")
            if n.adoption == "create":
                out.append(f"{n.node}: mix release, not adopted yet (install adopts it): no RELEASES file in "
                           f"{n.releases_dir}" + ("" if n.rel_file else ", and no .rel to adopt it from"))
            elif n.adoption == "restart":
                out.append(f"{n.node}: release_handler holds an invented entry (no libs) although RELEASES "
                           "exists (install restarts release_handler so it reads the file)")
            if n.boot_mismatch:
                out.append(f"{n.node}: {n.boot_mismatch}")
        used = self.releases_in_use
        if len(used) > 1:
            parts = [f"{vsn or '?'} on {', '.join(nodes)}" for (_, vsn), nodes in sorted(used.items(), key=str)]
            out.append("drift: the cluster runs more than one release: " + "; ".join(parts))
        if self.converge:
            out.append(self.converge)
        return out

    def to_json(self) -> dict[str, Any]:
        common = None
        if self.one_release:
            n = self.reachable[0]
            common = {"name": n.release_name, "vsn": n.current}
        return {"schema": SCHEMA, "ok": self.ok, "one_release": self.one_release, "release": common,
                "problems": self.problems(), "missing": self.missing, "converge": self.converge, "nodes": [n.to_json() for n in self.nodes]}




async def node_status(cluster: NodeOps, node: str, *, full: bool = True) -> NodeStatus:
    """One node's snapshot: one round trip (snapshot.py gathers everything on the node).

    full=False skips what the installer does not need (modified modules)."""
    r = await snapshot.raw(cluster.rpc, node, full)
    otp, erts, root, rdir_env, apps, loaded = r["otp"], r["erts"], r["root"], r["rdir_env"], r["apps"], r["loaded"]
    modified, wall, rh, cwd = r["modified"], r["wall"], r["rh"], r["cwd"]
    st = NodeStatus(node=node, otp_release=text(otp), erts_version=text(erts), root_dir=text(root))
    st.releases_dir = text(rdir_env[1]) if is_tagged(rdir_env, "ok", 2) else f"{st.root_dir}/releases"
    st.uptime_seconds = wall[0] / 1000.0 if isinstance(wall, tuple) else 0.0
    st.release_handler = rh != "undefined"
    st.cwd = text(cwd[1]) if is_tagged(cwd, "ok", 2) else ""
    st.applications = sorted((AppInfo(str(a[0]), text(a[2]), text(a[1])) for a in apps), key=lambda a: a.name)
    running = {a.name for a in st.applications}
    st.loaded_not_running = sorted((AppInfo(str(a[0]), text(a[2]), text(a[1])) for a in loaded
                                    if str(a[0]) not in running), key=lambda a: a.name)
    st.modified_modules = sorted(str(m) for m in (modified or []))

    info, rels, script_id = r["info"], r["rels"], r["script_id"]
    start_erl, var_start_erl = r["start_erl"], r["var_start_erl"]
    if isinstance(script_id, tuple) and len(script_id) == 2:
        st.booted = text(script_id[1])
    st.releases_file = is_tagged(info, "ok", 2)
    if st.releases_file:
        # relx/Distillery write "./lib/..." paths: they only resolve from the release root
        dirs = [text(app[2]) for rel in (info[1][0] if info[1] else [])
                if isinstance(rel, tuple) and len(rel) >= 5 for app in rel[4]
                if isinstance(app, tuple) and len(app) >= 3]
        st.relative_lib_paths = any(not d.startswith("/") for d in dirs)
    for rel in rels if isinstance(rels, list) else []:
        st.releases.append(ReleaseInfo(text(rel[0]), text(rel[1]), str(rel[3]), [text(x) for x in rel[2]]))
    name, cur = st.release_name, st.current
    script = r["script"] if name else None
    rel_files = r["rel_files"] if st.adoption == "create" and cur and isinstance(r["rel_files"], list) else None
    nb = next_boot(script=_file_text(script), var_start_erl=_file_text(var_start_erl),
                   start_erl=_file_text(start_erl), name=name)
    st.next_boot, st.next_boot_by = nb.vsn, nb.by
    if rel_files:
        files = sorted(text(f) for f in rel_files)
        pick = next((f for f in files if f in (f"{name}.rel", f"{name}-{cur}.rel")), files[0])
        st.rel_file = f"{st.releases_dir}/{cur}/{pick}"
    return st


def _file_text(r: Any) -> str | None:
    """{ok, Bin} of file:read_file -> its text; None for {error, _}."""
    return r[1].decode("utf-8", "replace") if is_tagged(r, "ok", 2) and isinstance(r[1], bytes) else None


async def statuses(ops: NodeOps, nodes: Iterable[str], *, full: bool = True) -> list[NodeStatus]:
    """One snapshot per node, in the order given; an unreachable node is a snapshot saying so."""
    targets = list(nodes)
    for n in targets[:1]:      # the expression is parsed once, then every node evaluates it
        try:
            await snapshot.prepare(ops.rpc, n, full)
        except ErldeployError:
            pass               # that node's own status says why
    res = await ops.each(lambda n: node_status(ops, n, full=full), targets)
    return [res[n].value if res[n].ok else NodeStatus(node=n, reachable=False, error=str(res[n].error))
            for n in targets]


async def cluster_status(cluster: Cluster, nodes: Iterable[str] | None = None, *,
                         full: bool = True) -> ClusterStatus:
    """Every member's snapshot (or the given nodes'), the unreachable seeds included."""
    out = await statuses(cluster, cluster.members if nodes is None else nodes, full=full)
    if nodes is None:
        for n, e in cluster.unreachable.items():
            out.append(NodeStatus(node=n, reachable=False, error=str(e)))
    return ClusterStatus(out)
