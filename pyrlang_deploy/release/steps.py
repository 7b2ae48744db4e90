"""The per-node release_handler steps over plain RPC, each returning a typed answer.

release_handler facts this rests on (see DESIGN.md): unpack_release takes the tarball's
name relative to the releases dir without `.tar.gz`; install_release may reply
{ok,...}, {error,...} or {continue_after_restart,...}, or the node may restart (the
connection drops) when something fails after the point of no return; a timeout means
"ask which_releases", never "it failed".
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import ConnectError, NodeDown, ReleaseError, RpcError, RpcTimeout, TermSyntaxError
from ..term.types import Atom
from .terms import current_and_permanent, error_reason, is_tagged, show, text

if TYPE_CHECKING:
    from collections.abc import Callable

    from .layouts import Layout
    from .nodeops import NodeOps


async def make_permanent(ops: NodeOps, node: str, vsn: str, *, timeout: float | None = None) -> None:
    """release_handler:make_permanent(vsn): what a restart boots from now on."""
    r = await ops.rpc(node, "release_handler", "make_permanent", [vsn], timeout=timeout)
    if r != "ok":
        raise ReleaseError(f"{node}: make_permanent({vsn}) failed: {show(r)}", node=node)


@dataclass
class InstallAnswer:
    kind: str            # ok | error | restarted | timeout | continue_after_restart
    detail: str = ""
    raw: Any = None


class NodeSteps:
    """release_handler calls on one cluster, node by node."""

    def __init__(self, ops: NodeOps, *, install_timeout: float = 600.0, restart_wait: float = 120.0):
        self.c = ops
        self.install_timeout = install_timeout
        self.restart_wait = restart_wait

    async def which_releases(self, node: str) -> list[tuple[str, str, str]]:
        rels = await self.c.rpc(node, "release_handler", "which_releases", [])
        return [(text(r[0]), text(r[1]), str(r[3])) for r in rels]

    async def current_and_permanent(self, node: str) -> tuple[str | None, str | None]:
        return current_and_permanent((v, s) for _, v, s in await self.which_releases(node))

    async def unpack(self, node: str, tar_stem: str) -> str:
        r = await self.c.rpc(node, "release_handler", "unpack_release", [tar_stem], timeout=self.install_timeout)
        if is_tagged(r, "ok", 2):
            return text(r[1])
        raise ReleaseError(f"{node}: unpack_release({tar_stem}) failed: {show(error_reason(r))}", node=node)

    async def unpack_as(self, node: str, releases_dir: str, layout: Layout) -> None:
        """Move the uploaded tarball where the layout's unpack name wants it, unpack, and write
        back the .rel release_handler deletes; on failure remove what was uploaded (and a
        releases/VSN dir the failed unpack left), so a retry starts clean."""
        rpc = self.c.rpc
        uploaded, placed = f"{releases_dir}/{layout.upload_name}", f"{releases_dir}/{layout.placed}"
        vdir = f"{releases_dir}/{layout.vsn}"
        had_vdir = await rpc(node, "filelib", "is_dir", [vdir]) is True
        rel_bytes = await self.tar_member(node, uploaded, layout.restore_rel) if layout.restore_rel else None
        if placed != uploaded:
            await rpc(node, "filelib", "ensure_dir", [placed])
            r = await rpc(node, "file", "rename", [uploaded, placed])
            if r != "ok":
                raise ReleaseError(f"{node}: moving {uploaded} to {placed} failed: {show(error_reason(r))}", node=node)
        try:
            await self.unpack(node, layout.unpack_name)
        except ReleaseError as e:
            for f in (placed, uploaded, f"{releases_dir}/{layout.unpack_name}.rel"):
                await rpc(node, "file", "delete", [f])
            if not had_vdir:
                await rpc(node, "file", "del_dir_r", [vdir])
            raise ReleaseError(f"{e}; the uploaded tarball was removed", node=node) from None
        if rel_bytes is not None:
            member = f"{releases_dir}/{layout.restore_rel.removeprefix('releases/')}"
            r = await rpc(node, "file", "write_file", [member, rel_bytes])
            if r != "ok":
                raise ReleaseError(f"{node}: writing back {member} failed: {show(error_reason(r))}", node=node)

    async def remove_release(self, node: str, vsn: str) -> None:
        r = await self.c.rpc(node, "release_handler", "remove_release", [vsn], timeout=self.install_timeout)
        if r != "ok":
            raise ReleaseError(f"{node}: remove_release({vsn}) failed: {show(error_reason(r))}", node=node)

    async def check_install(self, node: str, vsn: str) -> None:
        r = await self.c.rpc(node, "release_handler", "check_install_release", [vsn, [Atom("purge")]],
                             timeout=self.install_timeout)
        if not is_tagged(r, "ok"):
            raise ReleaseError(f"{node}: check_install_release({vsn}) failed: "
                               f"{show(error_reason(r))}", node=node)

    async def install(self, node: str, vsn: str) -> InstallAnswer:
        """install_release; on a timeout or a dropped connection, find out what really happened."""
        try:
            r = await self.c.rpc(node, "release_handler", "install_release",
                                 [vsn, [(Atom("update_paths"), True)]], timeout=self.install_timeout)
        except RpcTimeout:
            return InstallAnswer("timeout", f"no answer within {self.install_timeout:.0f} s")
        except NodeDown:
            return InstallAnswer("restarted", "the node went down during install_release")
        if is_tagged(r, "ok"):
            return InstallAnswer("ok", raw=r)
        if is_tagged(r, "continue_after_restart"):
            return InstallAnswer("continue_after_restart", "the node restarts into the new emulator", raw=r)
        if is_tagged(r, "error", 2):
            return InstallAnswer("error", show(r[1]), raw=r)
        return InstallAnswer("error", show(r), raw=r)

    async def make_permanent(self, node: str, vsn: str) -> None:
        await make_permanent(self.c, node, vsn, timeout=self.install_timeout)

    async def wait_back(self, node: str, *, timeout: float | None = None, old_pid: str | None = None) -> None:
        """Wait for a restarting node to answer again with release_handler running (and,
        given the OS pid of its emulator before, from another emulator: a reboot)."""
        wait = self.restart_wait if timeout is None else timeout
        deadline = time.monotonic() + wait
        last: Exception | None = None
        while time.monotonic() < deadline:
            try:   # the call reconnects: a restarted node is a new connection
                if old_pid is not None and text(await self.c.rpc(node, "os", "getpid", [], timeout=5.0)) == old_pid:
                    await asyncio.sleep(0.5)        # still the old emulator, shutting down
                    continue
                st = await self.c.rpc(node, "init", "get_status", [], timeout=5.0)
                if st == (Atom("started"), Atom("started")):
                    rh = await self.c.rpc(node, "erlang", "whereis", [Atom("release_handler")], timeout=5.0)
                    if rh != "undefined":
                        return
            except (ConnectError, NodeDown, RpcError) as e:
                last = e
            await asyncio.sleep(0.25)
        raise NodeDown(f"{node} did not come back within {wait:.0f} s"
                       + (f" (last: {last})" if last else ""), node=node)

    async def restarting_after_error(self, node: str, *, watch: float = 2.0) -> bool:
        """After install_release answered {error, _}: does the node restart?

        release_handler replies first and then restarts the node (init:restart) when the
        failure came after the point of no return (e.g. code_change_failed); the reply
        alone does not say which. Watch init:get_status() briefly.
        """
        deadline = time.monotonic() + watch
        while time.monotonic() < deadline:
            try:
                st = await self.c.rpc(node, "init", "get_status", [], timeout=2.0)
            except (NodeDown, ConnectError, RpcTimeout):
                return True
            if isinstance(st, tuple) and st and st[0] != "started":
                return True
            await asyncio.sleep(0.1)
        return False

    async def read_term_file(self, node: str, path: str) -> Any:
        r = await self.c.rpc(node, "file", "consult", [path])
        if is_tagged(r, "ok", 2) and r[1]:
            return r[1][0]
        return None

    async def relup_in_tarball(self, node: str, tar_path: str, vsn: str) -> Any:
        """The relup inside a tarball on the node, read in memory with erl_tar (nothing
        extracted) and parsed here like a local tarball's relup."""
        from .tarball import parse_consult

        member = f"releases/{vsn}/relup"
        r = await self.c.rpc(node, "erl_tar", "extract",
                             [tar_path, [(Atom("files"), [member]), Atom("memory"), Atom("compressed")]])
        if not (is_tagged(r, "ok", 2) and r[1]):
            return None
        try:
            return parse_consult(r[1][0][1].decode("utf-8"))
        except (TermSyntaxError, UnicodeDecodeError):  # treated like a missing relup: refused
            return None

    async def tar_members(self, node: str, tar_path: str) -> list[str]:
        """The member names of a tarball on the node (erl_tar:table, nothing extracted)."""
        r = await self.c.rpc(node, "erl_tar", "table", [tar_path, [Atom("compressed")]])
        return [text(m) for m in r[1]] if is_tagged(r, "ok", 2) else []

    async def tar_member(self, node: str, tar_path: str, member: str) -> bytes | None:
        r = await self.c.rpc(node, "erl_tar", "extract",
                             [tar_path, [(Atom("files"), [member]), Atom("memory"), Atom("compressed")]])
        return r[1][0][1] if is_tagged(r, "ok", 2) and r[1] else None

    async def releases_dir_writable(self, node: str, releases_dir: str) -> bool:
        """Can a file be made in the releases dir? Tried, not derived from mode bits (root
        ignores them; a read-only mount or an immutable dir does not)."""
        probe = f"{releases_dir}/.erldeploy-probe-{time.monotonic_ns()}"
        if await self.c.rpc(node, "file", "write_file", [probe, b""]) != "ok":
            return False
        await self.c.rpc(node, "file", "delete", [probe])
        return True

    async def free_bytes(self, dirs: dict[str, str]) -> dict[str, int | None]:
        """Free bytes in each node's releases dir (None: unknown), by `df`: one shell per
        host, on one of its nodes, since nodes that share a host name share its file systems
        and a shell started from the VM is the costly part (at 32 nodes on one machine, one
        per node was a sixth of an install). A dir df cannot read there is asked of its node."""
        hosts: dict[str, list[str]] = {}
        for node in dirs:
            hosts.setdefault(node.partition("@")[2], []).append(node)
        out: dict[str, int | None] = {}

        async def df(runner: str, nodes: list[str]) -> dict[str, int | None]:
            loop = " ".join(_sh_quote(dirs[n]) for n in nodes)
            r = await self.c.rpc(runner, "os", "cmd",
                                 [f"for d in {loop}; do df -Pk \"$d\" 2>/dev/null | sed -n 2p; echo =; done"])
            parts = text(r).split("=\n")
            return {n: _df_line_free(parts[i]) if i < len(parts) else None for i, n in enumerate(nodes)}

        async def host(nodes: list[str]) -> None:
            got = await df(nodes[0], nodes)
            out.update(got)
            again = [n for n in nodes[1:] if got[n] is None]    # not readable from the first node
            for v in await asyncio.gather(*(df(n, [n]) for n in again)):
                out.update(v)

        await asyncio.gather(*(host(ns) for ns in hosts.values()))
        return out

    async def lib_dirs(self, node: str, root_dir: str) -> frozenset[str] | None:
        """The names under ROOT/lib (APP-VSN dirs); None when it cannot be listed."""
        r = await self.c.rpc(node, "file", "list_dir", [f"{root_dir}/lib"])
        return frozenset(text(n) for n in r[1]) if is_tagged(r, "ok", 2) else None

    async def release_apps(self, node: str, releases_dir: str, vsn: str) -> dict[str, str]:
        """App versions of an unpacked release, from its .rel file on the node."""
        names = await self.c.rpc(node, "filelib", "wildcard", ["*.rel", f"{releases_dir}/{vsn}"])
        for n in names or []:
            rel = await self.read_term_file(node, f"{releases_dir}/{vsn}/{text(n)}")
            if isinstance(rel, tuple) and len(rel) == 4 and rel[0] == "release":
                return {str(a[0]): text(a[1]) for a in rel[3]}
        return {}

    async def running_apps(self, node: str) -> dict[str, str]:
        apps = await self.c.rpc(node, "application", "which_applications", [])
        return {str(a[0]): text(a[2]) for a in apps}

    async def health(self, node: str, verify: tuple[str, str, list[Any]],
                     io: Callable[[str], None] | None = None) -> None:
        """--verify's call; its io output goes to `io` (the default sink is stdout)."""
        m, f, a = verify
        try:
            r = await self.c.rpc(node, m, f, a, io=io)
        except RpcError as e:
            raise ReleaseError(f"{node}: health check {m}:{f}/{len(a)} failed: {e}", node=node) from None
        if r not in ("ok", True) and not is_tagged(r, "ok"):
            raise ReleaseError(f"{node}: health check {m}:{f}/{len(a)} returned {show(r)}", node=node)


def _df_line_free(line: str) -> int | None:
    """A `df -Pk` data line -> free bytes (its 4th column: available 1K blocks)."""
    try:
        return int(line.split()[3]) * 1024
    except (IndexError, ValueError):
        return None


def _sh_quote(path: str) -> str:
    return "'" + path.replace("'", "'\\''") + "'"
