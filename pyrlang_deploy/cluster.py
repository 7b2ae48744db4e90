"""A connected cluster: seed nodes -> members, concurrent fan-out, per-node results.

    async with Cluster(["a@127.0.0.1"], cookie=..., discover=True) as c:
        print(c.members)
        results = await c.rpc_all("erlang", "system_info", [Atom("otp_release")])
        st = await c.status()

Hidden connections are not transitive, so discovery asks every reachable seed for
`nodes()` and then connects to each member itself.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterable

from .errors import ErldeployError
from .record import Record, factory

TYPE_CHECKING = False  # typing is not imported at run time: see cli/fastpath.py
if TYPE_CHECKING:
    from typing import Any



class NodeResult(Record):
    """What one node answered: a value, or the error that stopped it."""

    _fields_ = ("node", "value", "error", "seconds")
    _defaults = {"value": None, "error": None, "seconds": 0.0}
    node: str
    value: Any
    error: ErldeployError | None
    seconds: float

    @property
    def ok(self) -> bool:
        return self.error is None

    def to_json(self) -> dict[str, Any]:
        from .jsonable import to_json

        doc: dict[str, Any] = {"node": self.node, "ok": self.ok, "seconds": round(self.seconds, 6)}
        if self.ok:
            doc["result"] = to_json(self.value)
        else:
            doc["error"] = {"kind": type(self.error).__name__, "message": str(self.error)}
        return doc


class Cluster(Record):
    _fields_ = (
        "seeds", "cookie", "name", "timeout", "epmd_port", "discover", "reach", "members", "unreachable",
        "driver",
    )
    _defaults = {
        "name": None, "timeout": 30.0, "epmd_port": None, "discover": False, "reach": None,
        "members": factory(list), "unreachable": factory(dict), "driver": None,
    }
    _hidden = ("cookie",)
    seeds: list[str]
    cookie: str
    name: str | None
    timeout: float
    epmd_port: int | None
    discover: bool
    reach: Any  # erldist.carrier.Reach: TLS, NAME@HOST:PORT ports, epmd-less port
    members: list[str]
    unreachable: dict[str, ErldeployError]
    # the node class: None is erldist.node.LocalNode (asyncio); the CLI's one-node
    # commands give erldist.blocking.BlockingNode (see cli/fastpath.py)
    driver: Any

    def __post_init__(self) -> None:
        self.node = None

    async def __aenter__(self) -> Cluster:
        await self.open()
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()

    async def open(self) -> None:
        from .erldist.address import split_targets
        from .erldist.carrier import Reach

        # seeds may carry their port (NAME@HOST:PORT): the name is what the node calls itself
        self.seeds, ports = split_targets(self.seeds, lenient=True)
        if ports:
            self.reach = self.reach or Reach()
            self.reach.ports.update(ports)
        driver = self.driver
        if driver is None:
            from .erldist.node import LocalNode as driver
        self.node = driver(name=self.name, cookie=self.cookie, epmd_port=self.epmd_port, reach=self.reach)
        await self.refresh()

    async def close(self) -> None:
        if self.node is not None:
            await self.node.close()
            self.node = None

    async def refresh(self) -> list[str]:
        """Connect to the seeds (and with discover=True, to every member they know)."""
        self.unreachable.clear()
        order = list(dict.fromkeys(self.seeds))
        results = await self._connect_many(order)
        if self.discover:
            known = [r.node for r in results if r.ok]
            lists = await self.each(lambda n: self.rpc(n, "erlang", "nodes", []), known)
            seen = {str(m) for r in lists.values() if r.ok for m in r.value}
            extra = sorted(seen - set(order))
            if extra:
                if self.node.reach.ports and self.node.reach.dist_port is None and known:
                    from .erldist.carrier import learn_ports  # seeds given as NAME@HOST:PORT
                    await learn_ports(self.node.reach, self.rpc, known[0], extra)
                results += await self._connect_many(extra)
                order += extra
        self.members = [r.node for r in results if r.ok]   # seeds first, then discovered, sorted
        for r in results:
            if not r.ok:
                self.unreachable[r.node] = r.error
        return self.members

    async def _connect_many(self, nodes: list[str]) -> list[NodeResult[None]]:
        async def one(n: str) -> None:
            await self.node.connect(n, timeout=min(self.timeout, 15.0))
        res = await self.each(one, nodes)
        return [res[n] for n in nodes]

    async def rpc(self, node: str, module: str, function: str, args: Iterable[Any] = (),
                  *, timeout: float | None = None, io: Callable[[str], None] | None = None) -> Any:
        return await self.node.rpc(node, module, function, args,
                                   timeout=self.timeout if timeout is None else timeout, io=io)

    async def each(self, fn: Callable[[str], Awaitable[Any]], nodes: Iterable[str] | None = None
                   ) -> dict[str, NodeResult]:
        """Run fn(node) on every node concurrently; one node's failure never hides another's result."""
        targets = list(self.members if nodes is None else nodes)

        async def run(n: str) -> NodeResult:
            t0 = time.perf_counter()
            try:
                v = await fn(n)
                return NodeResult(n, value=v, seconds=time.perf_counter() - t0)
            except ErldeployError as e:
                if e.node is None:
                    e.node = n
                return NodeResult(n, error=e, seconds=time.perf_counter() - t0)

        if len(targets) == 1:  # no gather for one node
            r = await run(targets[0])
            return {r.node: r}
        import asyncio

        done = await asyncio.gather(*(run(n) for n in targets))
        return {r.node: r for r in done}

    async def rpc_all(self, module: str, function: str, args: Iterable[Any] = (),
                      nodes: Iterable[str] | None = None, *, timeout: float | None = None,
                      io: Callable[[str], None] | None = None) -> dict[str, NodeResult[Any]]:
        a = list(args)
        return await self.each(lambda n: self.rpc(n, module, function, a, timeout=timeout, io=io), nodes)

    # --- release management (lazy: the release package is heavier) ---------

    async def status(self, nodes: Iterable[str] | None = None):
        from .release.status import cluster_status
        return await cluster_status(self, nodes)

    async def install(self, vsn: str, **options: Any):
        from .release.install import install
        return await install(self, vsn, **options)

    async def rollback(self, vsn: str | None = None, **options: Any):
        from .release.install import rollback
        return await rollback(self, vsn, **options)

    async def upload(self, tar: str, *, agent: bool = True, delta: bool = False, **options: Any):
        """Stage a release tarball on every member (release/transfer.py), under the deploy lock."""
        from pathlib import Path

        from .release.tarball import inspect_tarball
        from .release.transfer import upload_everywhere
        return await upload_everywhere(self, inspect_tarball(Path(tar)), agent=agent, delta=delta, **options)

    async def permanent(self, vsn: str):
        """Make release ``vsn`` permanent on every member (release/manage.py), under the deploy lock."""
        from .release.manage import make_permanent_everywhere
        return await make_permanent_everywhere(self, vsn)

    async def remove(self, vsn: str):
        """Remove release ``vsn`` from every member (release/manage.py), under the deploy lock."""
        from .release.manage import remove_everywhere
        return await remove_everywhere(self, vsn)
