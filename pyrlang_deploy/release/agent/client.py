"""``AgentClient``: the controller's side of the on-node agent (``agent/*.erl``), one
node per call (the cluster fans out).

It wraps a connected ``LocalNode``: loads the agent's beams (beams.py), streams a
tarball (upload.py), runs a guarded install and answers its lease (guard.py), and
removes the agent again. Replies are decoded by replies.py; messages here are one
line naming the node and the cause.
"""

from __future__ import annotations

import os
from collections.abc import Generator, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ...errors import AgentError, NodeDown, RpcError
from ...term.types import Atom
from ..upload import UploadResult
from . import beams as beams_
from . import guard, replies
from . import upload as upload_
from .beams import MODULES, AgentBeams, shipped_beams
from .guard import EventCb, GuardWatch
from .replies import AgentStatus, GuardEvent, GuardResult
from .upload import CHUNK_SIZE, WINDOW, Digests, ProgressCb

if TYPE_CHECKING:
    from ...erldist.node import LocalNode

RPC_TIMEOUT = beams_.RPC_TIMEOUT
INSTALL_TIMEOUT = 600.0      # install_release may legitimately take minutes
ROLLBACK_TIMEOUT = 600.0


class AgentClient:
    """Talks to the agent on any node ``local`` is (or can get) connected to."""

    def __init__(self, local: LocalNode, *, chunk_size: int = CHUNK_SIZE, window: int = WINDOW,
                 beams: AgentBeams | None = None) -> None:
        self.local = local
        self._beams = beams                 # None: the beams shipped in this package
        self.chunk_size = chunk_size
        self.window = window
        self._guards: dict[str, GuardWatch] = {}
        self._digests = Digests()
        # node -> the connection over which we found (or made) our beams loaded: a run asks
        # for the agent at every step, and a node that restarted comes back on another one
        self._loaded_via: dict[str, object] = {}

    # --- loading -----------------------------------------------------------------

    @property
    def beams(self) -> AgentBeams:
        return self._beams or shipped_beams()

    async def loaded_on(self, node: str) -> bool:
        """Is any erldeploy_* module loaded on ``node``?"""
        return any((await beams_.loaded_md5(self._rpc, node)).values())

    async def ensure_loaded(self, node: str) -> bool:
        """Load the agent unless ``node`` already runs exactly these beams.
        Returns True when it loaded something, False when nothing was needed."""
        conn = self.local.connection(node)
        if conn is not None and self._loaded_via.get(node) is conn:
            return False
        did = await beams_.load(self._rpc, node, self.beams, await beams_.loaded_md5(self._rpc, node))
        conn = self.local.connection(node)
        if conn is not None:
            self._loaded_via[node] = conn
        return did

    async def unload(self, node: str, *, force: bool = False) -> bool:
        """Remove every agent module from ``node``; True if something was loaded.

        Refuses while a guard holds an install on the node (removing it would kill
        the guard and with it the lease's rollback), unless ``force``.
        """
        conn, via = self.local.connection(node), self._loaded_via.pop(node, None)
        ours = conn is not None and via is conn       # our beams, loaded over this very connection
        have = {m: "loaded" for m in MODULES} if ours else await beams_.loaded_md5(self._rpc, node)
        if not any(have.values()):
            return False
        if not force and have.get("erldeploy_guard"):
            busy = replies.guard_busy(await self._rpc(node, "erldeploy_guard", "status", []))
            if busy is not None:
                raise AgentError(f"{node}: a guarded install of {busy[0]} is in progress ({busy[1]}); "
                                 "commit or abort it first", node=node)
        await beams_.remove(self._rpc, node)
        self._close_watch(node)
        return True

    # --- status ------------------------------------------------------------------

    async def status(self, node: str) -> AgentStatus:
        have = await beams_.loaded_md5(self._rpc, node)
        loaded = any(have.values())
        current = all(have.get(m) == self.beams.md5.get(m) for m in MODULES)
        st = await self._rpc(node, "erldeploy_agent", "status", []) if have.get("erldeploy_agent") else None
        # The outcome outlives the agent (persistent_term): readable without loading it.
        outcome = await self._rpc(node, "persistent_term", "get",
                                  [(Atom("erldeploy_agent"), Atom("last_outcome")), replies.UNDEFINED])
        return replies.agent_status(node, loaded, current, st, outcome)

    # --- upload ------------------------------------------------------------------

    async def upload(self, node: str, path: str | os.PathLike[str], *, progress: ProgressCb | None = None,
                     name: str | None = None, sha256: str | None = None, md5: str | None = None,
                     releases_dir: str | None = None) -> UploadResult:
        """Stream ``path`` into the node's releases dir as ``name`` (default: the file's name).

        At most ``self.window`` chunks are unacknowledged; the node checks size and digest
        before the atomic rename, so a file corrupted in transit never appears under its
        final name. ``sha256``/``md5`` (hex) save hashing the file here again.
        ``releases_dir`` is accepted for symmetry with the plain upload; the agent asks
        release_handler's own setting.
        """
        del releases_dir
        await self.ensure_loaded(node)
        p = Path(path)
        known = {"sha256": sha256, "md5": md5}

        def digest_of(algo: str) -> bytes:
            return bytes.fromhex(known[algo]) if known.get(algo) else self._digests.of(p, algo)

        return await upload_.upload(self.local, self._rpc, node, p, name or p.name, digest_of, self._chunks,
                                    window=self.window, progress=progress)

    def _chunks(self, p: Path) -> Generator[bytes, None, None]:
        """The file in chunk_size pieces, as they go on the wire (tests corrupt one here)."""
        return upload_.file_chunks(p, self.chunk_size)

    # --- guarded install ---------------------------------------------------------

    async def guard_install(self, node: str, vsn: str, lease_s: float, verify: Any = None,
                            expected_apps: dict[str, str] | Iterable[tuple[str, str]] | None = None,
                            on_event: EventCb | None = None, *, install_timeout: float = INSTALL_TIMEOUT,
                            settle_ms: int | None = None, decision: Any = None) -> GuardResult:
        """Check, install and verify ``vsn`` on ``node`` under a lease of ``lease_s`` seconds.

        On success the node waits for ``commit``/``renew`` and rolls itself back when
        neither comes in time. ``verify``: ``"mod:fun"``, ``(mod, fun, args)`` or None.
        ``on_event`` sees the guard's live events (crash reports as they happen).
        ``decision``: the run's `decision.Decision`; the guard then commits or rolls back as
        it says, even without us.
        """
        await self.ensure_loaded(node)
        self._close_watch(node)
        watch = self._guards[node] = GuardWatch(self.local.mailbox(), node, on_event)
        opts = guard.options(watch, lease_s, verify, expected_apps, install_timeout, settle_ms)
        if decision is not None:
            opts.update(decision.guard_options())
        return await guard.run(self.local.rpc, watch, node, vsn, opts, install_timeout + RPC_TIMEOUT)

    async def renew(self, node: str, vsn: str) -> None:
        why = replies.failure(await self._rpc(node, "erldeploy_agent", "renew", [vsn]))
        if why is not None:
            raise AgentError(f"{node}: lease for {vsn} not renewed: {why}", node=node)

    async def ready(self, node: str, vsn: str) -> None:
        """The guard on ``node`` may be committed: nothing crashed under ``vsn`` since its verify."""
        why = replies.failure(await self._rpc(node, "erldeploy_agent", "ready", [vsn]))
        if why is not None:
            raise AgentError(f"{node}: not ready to commit {vsn}: {why}", node=node)

    async def commit(self, node: str, vsn: str) -> None:
        """Make ``vsn`` permanent on ``node`` and end its guard."""
        why = replies.failure(await self._rpc(node, "erldeploy_agent", "commit", [vsn], timeout=ROLLBACK_TIMEOUT))
        if why is not None:
            raise AgentError(f"{node}: commit of {vsn} failed: {why}", node=node)
        self._close_watch(node)

    async def abort(self, node: str, vsn: str) -> str:
        """Roll ``node`` back from ``vsn`` now; returns the version it is back on."""
        r = await self._rpc(node, "erldeploy_agent", "abort", [vsn], timeout=ROLLBACK_TIMEOUT)
        self._close_watch(node)
        back = replies.aborted(r)
        if back is None:
            raise AgentError(f"{node}: rollback from {vsn} failed: {replies.failure(r)}", node=node)
        return back

    def events(self, node: str) -> list[GuardEvent]:
        """Every event the guard on ``node`` sent so far (install, lease, rollback)."""
        watch = self._guards.get(node)
        return list(watch.events) if watch else []

    def _close_watch(self, node: str) -> None:
        watch = self._guards.pop(node, None)
        if watch:
            watch.close()

    # --- plumbing ----------------------------------------------------------------

    async def _rpc(self, node: str, mod: str, fun: str, args: list[Any], timeout: float = RPC_TIMEOUT) -> Any:
        try:
            return await self.local.rpc(node, mod, fun, args, timeout=timeout)
        except NodeDown:
            raise
        except RpcError as e:
            if replies.is_undef(e.reason, mod):
                raise AgentError(f"{node}: the agent is not loaded (erldeploy {mod} missing)", node=node) from None
            raise
