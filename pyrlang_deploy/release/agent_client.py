"""The controller's side of the on-node agent (``agent/*.erl``).

``AgentClient`` wraps a connected ``LocalNode``: it loads the agent's beams into a
node with ``code:load_binary`` (never onto its disk), streams a tarball to it in
chunk messages, runs a guarded install there and answers its lease, and removes
the agent again. Every call names one node; the cluster fans out.

The agent's reasons come back as Erlang terms; messages here are one line naming
the node and the cause.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import time
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Generator, Iterable

from ..errors import AgentError, ErldeployError, NodeDown, ReceiveTimeout, RpcError
from ..term.types import Atom, ExportFun, Pid
from .upload import UploadResult

if TYPE_CHECKING:
    from ..erldist.node import LocalNode

# Load order does not matter to the VM; keep the API module last so that
# "erldeploy_agent is loaded" implies the rest is too.
MODULES = ("erldeploy_fmt", "erldeploy_capture", "erldeploy_upload", "erldeploy_guard", "erldeploy_agent")
LOADED_AS = "erldeploy_agent (loaded over distribution)"   # what code:which/1 shows on the node

CHUNK_SIZE = 1 << 20
WINDOW = 8
ACK_TIMEOUT = 120.0          # one chunk written and hashed; generous for slow disks
RPC_TIMEOUT = 30.0
INSTALL_TIMEOUT = 600.0      # install_release may legitimately take minutes
ROLLBACK_TIMEOUT = 600.0

EVENT = Atom("erldeploy_event")
CHUNK = Atom("erldeploy_chunk")
CHUNK_ACK = Atom("erldeploy_chunk_ack")
CHUNK_ERROR = Atom("erldeploy_chunk_error")
UNDEFINED = Atom("undefined")

# A guard in these phases has answered its controller and is only exiting.
_FINISHED_PHASES = ("committed", "ended")

ProgressCb = Callable[[int, int], Any]
EventCb = Callable[["GuardEvent"], Any]


# ---------------------------------------------------------------- results

@dataclass(frozen=True)
class CrashReport:
    """One error-level event the agent captured during the upgrade window."""

    kind: str            # crash_report | supervisor_report | terminate | error
    who: str             # registered name or pid, as text
    reason: str          # the innermost reason, one line
    text: str            # the whole event, one line

    def __str__(self) -> str:
        return f"{self.kind} {self.who}: {self.reason}"


@dataclass(frozen=True)
class GuardEvent:
    """A live event from a node's guard: ``kind`` is the tag, ``data`` the rest, decoded."""

    node: str
    kind: str            # stage | crash | install_failed | verify_failed | rollback | lease_expired | committed | ...
    data: Any

    @property
    def crash(self) -> CrashReport | None:
        return _crash(self.data) if self.kind == "crash" else None


@dataclass
class GuardResult:
    """What the guarded install on one node did.

    ``ok``: installed and verified; the node now waits for commit within the lease.
    Otherwise ``stage`` says where it failed (check, install, verify, guard) and the
    node is on ``rolled_back_to`` (after a verify failure) or untouched (check), or
    restarting into its permanent release (``node_restarting``: a failure after
    release_handler's point of no return, e.g. a crash in code_change).
    """

    node: str
    vsn: str
    ok: bool
    from_vsn: str | None = None
    stage: str | None = None
    reason: Any = None
    reason_text: str = ""
    root_cause: str = ""
    node_restarting: bool = False
    rolled_back_to: str | None = None
    timings_ms: dict[str, int] = field(default_factory=dict)
    crashes: list[CrashReport] = field(default_factory=list)
    errors: list[CrashReport] = field(default_factory=list)
    releases: list[tuple[str, str]] = field(default_factory=list)
    events: list[GuardEvent] = field(default_factory=list)

    def describe(self) -> str:
        if self.ok:
            return f"{self.node}: {self.from_vsn} -> {self.vsn} installed and verified, waiting for commit"
        why = self.root_cause or self.reason_text or _text(self.reason)
        tail = ""
        if self.rolled_back_to:
            tail = f"; rolled back to {self.rolled_back_to}"
        elif self.node_restarting:
            tail = "; the node restarts into its permanent release"
        crashes = f"; crashes: {'; '.join(map(str, self.crashes))}" if self.crashes else ""
        return f"{self.node}: {self.stage} failed for {self.vsn}: {why}{tail}{crashes}"


@dataclass(frozen=True)
class AgentStatus:
    node: str
    loaded: bool                 # any erldeploy_* module loaded
    current: bool                # exactly the beams this controller ships
    guard: dict[str, Any] | None
    uploads: list[dict[str, Any]]
    last_outcome: dict[str, Any] | None

    def describe(self) -> str:
        parts = ["agent loaded" + ("" if self.current else " (another build)") if self.loaded else "agent not loaded"]
        if self.guard:
            g = self.guard
            parts.append(f"guard {g.get('phase')} {g.get('from')} -> {g.get('vsn')}"
                         + (f", lease {g['lease_left_ms'] / 1000:.1f}s left" if g.get("lease_left_ms") is not None
                            else ""))
        for u in self.uploads:
            parts.append(f"upload {u.get('name')} {u.get('bytes')}/{u.get('size')} bytes")
        if self.last_outcome:
            o = self.last_outcome
            parts.append(f"last guarded install: {o.get('result')} {o.get('from')} -> {o.get('vsn')} at {o.get('at')}")
        return "; ".join(parts)


# ---------------------------------------------------------------- the shipped beams

@dataclass(frozen=True)
class AgentBeams:
    beams: dict[str, bytes]      # module -> beam file contents
    md5: dict[str, str]          # module -> Mod:module_info(md5) as hex
    source_sha256: str

    @classmethod
    def shipped(cls) -> "AgentBeams":
        pkg = resources.files("pyrlang_deploy.agent")
        try:
            beams = {m: pkg.joinpath(f"{m}.beam").read_bytes() for m in MODULES}
            md5 = dict(line.split() for line in pkg.joinpath("MODULE_MD5").read_text().splitlines() if line.strip())
            sha = pkg.joinpath("SOURCE_SHA256").read_text().strip()
        except OSError as e:
            raise AgentError(f"the agent's beams are missing from this installation ({e}); "
                             "run scripts/build_agent") from None
        return cls(beams, md5, sha)


_BEAMS: AgentBeams | None = None


def shipped_beams() -> AgentBeams:
    global _BEAMS
    if _BEAMS is None:
        _BEAMS = AgentBeams.shipped()
    return _BEAMS


# ---------------------------------------------------------------- the client

class AgentClient:
    """Talks to the agent on any node ``local`` is (or can get) connected to."""

    def __init__(self, local: "LocalNode", *, chunk_size: int = CHUNK_SIZE, window: int = WINDOW,
                 beams: AgentBeams | None = None) -> None:
        self.local = local
        self._beams = beams                 # None: the beams shipped in this package
        self.chunk_size = chunk_size
        self.window = window
        self._guards: dict[str, _GuardWatch] = {}
        self._digests: dict[tuple[str, int, int, str], bytes] = {}

    # --- loading -----------------------------------------------------------------

    @property
    def beams(self) -> AgentBeams:
        return self._beams or shipped_beams()

    async def loaded_on(self, node: str) -> bool:
        """Is any erldeploy_* module loaded on ``node``?"""
        return any((await self._loaded_md5(node)).values())

    async def ensure_loaded(self, node: str) -> bool:
        """Load the agent unless ``node`` already runs exactly these beams.

        Returns True when it loaded something, False when nothing was needed.
        """
        beams = self.beams
        have = await self._loaded_md5(node)
        stale = [m for m in MODULES if have.get(m) != beams.md5.get(m)]
        if not stale:
            return False
        for m in stale:
            if have.get(m) is not None:
                # Another build is loaded: make room (old code must be gone before
                # load_binary can turn the current version into old code).
                await self._rpc(node, "code", "soft_purge", [Atom(m)])
            try:
                r = await self.local.rpc(node, "code", "load_binary", [Atom(m), LOADED_AS, beams.beams[m]],
                                         timeout=RPC_TIMEOUT)
            except NodeDown:
                raise
            except ErldeployError as e:
                raise AgentError(f"{node}: cannot load the agent ({m}): {e}", node=node) from None
            if not (isinstance(r, tuple) and r and r[0] == "module"):
                raise AgentError(f"{node}: cannot load the agent ({m}): {_text(_error_reason(r))}", node=node)
        return True

    async def unload(self, node: str, *, force: bool = False) -> bool:
        """Remove every agent module from ``node``; True if something was loaded.

        Refuses while a guard holds an install on the node (removing it would kill
        the guard and with it the lease's rollback), unless ``force``.
        """
        have = await self._loaded_md5(node)
        if not any(have.values()):
            return False
        if not force and have.get("erldeploy_guard"):
            guard = await self._rpc(node, "erldeploy_guard", "status", [])
            if isinstance(guard, dict) and str(guard.get("phase")) not in _FINISHED_PHASES:
                raise AgentError(f"{node}: a guarded install of {_text(guard.get('vsn'))} is in progress "
                                 f"({_text(guard.get('phase'))}); commit or abort it first", node=node)
        steps = [(f, m) for m in MODULES for f in ("purge", "delete", "purge")]
        # One round trip: lists:zipwith(fun erlang:apply/2, [fun code:F/1...], [[M]...]).
        await self._rpc(node, "lists", "zipwith",
                        [ExportFun(Atom("erlang"), Atom("apply"), 2),
                         [ExportFun(Atom("code"), Atom(f), 1) for f, _ in steps],
                         [[Atom(m)] for _, m in steps]])
        watch = self._guards.pop(node, None)
        if watch:
            watch.close()
        return True

    async def _loaded_md5(self, node: str) -> dict[str, str | None]:
        async def one(m: str) -> str | None:
            loaded = await self._rpc(node, "erlang", "module_loaded", [Atom(m)])
            if loaded is not True:
                return None
            md5 = await self._rpc(node, "erlang", "get_module_info", [Atom(m), Atom("md5")])
            return md5.hex() if isinstance(md5, bytes) else None

        values = await asyncio.gather(*(one(m) for m in MODULES))
        return dict(zip(MODULES, values))

    # --- status ------------------------------------------------------------------

    async def status(self, node: str) -> AgentStatus:
        have = await self._loaded_md5(node)
        loaded = any(have.values())
        current = all(have.get(m) == self.beams.md5.get(m) for m in MODULES)
        guard, uploads = None, []
        if have.get("erldeploy_agent"):
            st = await self._rpc(node, "erldeploy_agent", "status", [])
            if isinstance(st, dict):
                guard = _plain(st.get("guard")) if isinstance(st.get("guard"), dict) else None
                uploads = [_plain(u) for u in st.get("uploads") or []]
        # The outcome outlives the agent (persistent_term): readable without loading it.
        outcome = await self._rpc(node, "persistent_term", "get",
                                  [(Atom("erldeploy_agent"), Atom("last_outcome")), UNDEFINED])
        return AgentStatus(node, loaded, loaded and current, guard, uploads,
                           _plain(outcome) if isinstance(outcome, dict) else None)

    # --- upload ------------------------------------------------------------------

    async def upload(self, node: str, path: str | os.PathLike[str], *, progress: ProgressCb | None = None,
                     name: str | None = None, sha256: str | None = None, md5: str | None = None,
                     releases_dir: str | None = None) -> UploadResult:
        """Stream ``path`` into the node's releases dir as ``name`` (default: the file's name).

        Chunks go as plain messages with ``self.window`` of them unacknowledged at
        most; the node checks size and digest before the atomic rename, so a file
        corrupted in transit never appears under its final name. ``sha256``/``md5`` (hex)
        save hashing the file here again. ``releases_dir`` is accepted for symmetry with the
        plain upload; the agent asks release_handler's own setting.
        """
        del releases_dir
        await self.ensure_loaded(node)
        p = Path(path)
        size = p.stat().st_size
        name = name or p.name
        info = await self._rpc(node, "erldeploy_agent", "info", [])
        algos = [str(a) for a in (info.get("algos") or [])] if isinstance(info, dict) else []
        algo = "sha256" if "sha256" in algos else "md5"
        known = {"sha256": sha256, "md5": md5}.get(algo)
        digest = bytes.fromhex(known) if known else self._digest(p, algo)
        t0 = time.monotonic()
        async with self.local.mailbox() as mb:
            opened = await self._rpc(node, "erldeploy_agent", "upload_open",
                                     [name, size, Atom(algo), digest, mb.pid])
            tag = opened[0] if isinstance(opened, tuple) and opened else None
            if tag == "already_present":
                if progress:
                    progress(size, size)
                return UploadResult(node, _text(opened[1]), size, True, algo, time.monotonic() - t0)
            if tag != "ok":
                raise AgentError(f"{node}: upload of {name} refused: {_text(_error_reason(opened))}", node=node)
            upid: Pid = opened[1]
            await self._stream(node, mb, upid, p, size, progress)
            done = await self._rpc(node, "erldeploy_agent", "upload_finish", [upid], timeout=ACK_TIMEOUT)
        if isinstance(done, tuple) and done and done[0] == "ok":
            return UploadResult(node, _text(done[1]), size, False, algo, time.monotonic() - t0)
        reason = _error_reason(done)
        if isinstance(reason, tuple) and reason and reason[0] == "checksum_mismatch":
            raise AgentError(f"{node}: {name} arrived corrupted ({algo} {_text(reason[2])}, expected "
                             f"{_text(reason[1])}); nothing was installed", node=node)
        raise AgentError(f"{node}: upload of {name} failed: {_text(reason)}", node=node)

    async def _stream(self, node: str, mb: Any, upid: Pid, p: Path, size: int,
                      progress: ProgressCb | None) -> None:
        def is_reply(m: Any) -> bool:
            return (isinstance(m, tuple) and len(m) >= 3 and m[0] in (CHUNK_ACK, CHUNK_ERROR) and m[1] == upid)

        sent = done_bytes = 0
        in_flight: dict[int, int] = {}
        chunks = self._chunks(p)
        try:
            eof = size == 0
            while not eof or in_flight:
                while not eof and len(in_flight) < self.window:
                    data = next(chunks, None)
                    if data is None:
                        eof = True
                        break
                    await mb.send(upid, (CHUNK, sent, data))
                    in_flight[sent] = len(data)
                    sent += 1
                if not in_flight:
                    break
                try:
                    msg = await mb.receive(is_reply, timeout=ACK_TIMEOUT)
                except ReceiveTimeout:
                    raise AgentError(f"{node}: upload of {p.name} stalled: no ack for {ACK_TIMEOUT:g}s",
                                     node=node) from None
                if msg[0] == CHUNK_ERROR:
                    raise AgentError(f"{node}: upload of {p.name} failed at chunk {msg[2]}: {_text(msg[3])}",
                                     node=node)
                done_bytes += in_flight.pop(msg[2], 0)
                if progress:
                    progress(done_bytes, size)
        finally:
            chunks.close()

    def _chunks(self, p: Path) -> Generator[bytes, None, None]:
        """The file in chunk_size pieces, as they go on the wire."""
        with p.open("rb") as f:
            while data := f.read(self.chunk_size):
                yield data

    def _digest(self, p: Path, algo: str) -> bytes:
        st = p.stat()
        key = (str(p.resolve()), st.st_size, st.st_mtime_ns, algo)
        if key not in self._digests:
            h = hashlib.new(algo)
            with p.open("rb") as f:
                for block in iter(lambda: f.read(1 << 20), b""):
                    h.update(block)
            self._digests[key] = h.digest()
        return self._digests[key]

    # --- guarded install ---------------------------------------------------------

    async def guard_install(self, node: str, vsn: str, lease_s: float, verify: Any = None,
                            expected_apps: dict[str, str] | Iterable[tuple[str, str]] | None = None,
                            on_event: EventCb | None = None, *, install_timeout: float = INSTALL_TIMEOUT,
                            settle_ms: int | None = None) -> GuardResult:
        """Check, install and verify ``vsn`` on ``node`` under a lease of ``lease_s`` seconds.

        On success the node waits for ``commit``/``renew`` and rolls itself back when
        neither comes in time. ``verify``: ``"mod:fun"``, ``(mod, fun, args)`` or None.
        ``on_event`` sees the guard's live events (crash reports as they happen).
        """
        await self.ensure_loaded(node)
        old = self._guards.pop(node, None)
        if old:
            old.close()
        watch = _GuardWatch(self.local.mailbox(), node, on_event)
        self._guards[node] = watch
        opts: dict[Any, Any] = {
            Atom("lease_ms"): int(lease_s * 1000),
            Atom("controller"): watch.mailbox.pid,
            Atom("verify"): _verify_spec(verify),
            Atom("expected_apps"): [(Atom(a), str(v)) for a, v in _pairs(expected_apps)],
            Atom("install_timeout"): int(install_timeout * 1000),
        }
        if settle_ms is not None:
            opts[Atom("settle_ms")] = int(settle_ms)
        try:
            reply = await self.local.rpc(node, "erldeploy_agent", "guard_install", [vsn, opts],
                                         timeout=install_timeout + RPC_TIMEOUT)
        except (NodeDown, RpcError) as e:
            # A crash after the point of no return restarts the node, taking the
            # rpc with it; the guard sent its reason first. Let it arrive.
            await watch.settle()
            failed = watch.find("install_failed")
            if failed is None:
                raise AgentError(f"{node}: guarded install of {vsn} lost: {e}", node=node) from None
            info = _plain(failed.data)
            return GuardResult(node, vsn, False, stage="install", reason=failed.data,
                               reason_text=str(info.get("reason", "")), root_cause=str(info.get("root_cause", "")),
                               node_restarting=bool(info.get("node_restarting")),
                               crashes=watch.crashes(), events=list(watch.events))
        await watch.settle(0.0)
        return _guard_result(node, vsn, reply, watch)

    async def renew(self, node: str, vsn: str) -> None:
        r = await self._rpc(node, "erldeploy_agent", "renew", [vsn])
        if r != "ok":
            raise AgentError(f"{node}: lease for {vsn} not renewed: {_text(_error_reason(r))}", node=node)

    async def commit(self, node: str, vsn: str) -> None:
        """Make ``vsn`` permanent on ``node`` and end its guard."""
        r = await self._rpc(node, "erldeploy_agent", "commit", [vsn], timeout=ROLLBACK_TIMEOUT)
        if r != "ok":
            raise AgentError(f"{node}: commit of {vsn} failed: {_text(_error_reason(r))}", node=node)
        self._close_watch(node)

    async def abort(self, node: str, vsn: str) -> str:
        """Roll ``node`` back from ``vsn`` now; returns the version it is back on."""
        r = await self._rpc(node, "erldeploy_agent", "abort", [vsn], timeout=ROLLBACK_TIMEOUT)
        self._close_watch(node)
        if isinstance(r, tuple) and len(r) == 3 and r[0] == "ok":
            return _text(r[2])
        raise AgentError(f"{node}: rollback from {vsn} failed: {_text(_error_reason(r))}", node=node)

    def events(self, node: str) -> list[GuardEvent]:
        """Every event the guard on ``node`` sent so far (install, lease, rollback)."""
        watch = self._guards.get(node)
        return list(watch.events) if watch else []

    def keep_alive(self, nodes: Iterable[str], vsn: str, interval_s: float) -> "LeaseKeeper":
        """Renew the lease on ``nodes`` every ``interval_s`` until ``.stop()``."""
        return LeaseKeeper(self, list(nodes), vsn, interval_s)

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
            if _is_undef(e.reason, mod):
                raise AgentError(f"{node}: the agent is not loaded (erldeploy {mod} missing)", node=node) from None
            raise


class LeaseKeeper:
    """Renews a guard's lease on several nodes while the controller works elsewhere."""

    def __init__(self, client: AgentClient, nodes: list[str], vsn: str, interval_s: float) -> None:
        self.client, self.nodes, self.vsn, self.interval_s = client, nodes, vsn, interval_s
        self.failures: dict[str, str] = {}
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            results = await asyncio.gather(*(self.client.renew(n, self.vsn) for n in self.nodes),
                                           return_exceptions=True)
            for n, r in zip(self.nodes, results):
                if isinstance(r, BaseException):
                    self.failures[n] = str(r)

    async def stop(self) -> None:
        self._task.cancel()
        try:
            await self._task
        except asyncio.CancelledError:
            pass


class _GuardWatch:
    """The mailbox a guard sends its live events to, read by a background task."""

    def __init__(self, mailbox: Any, node: str, on_event: EventCb | None) -> None:
        self.mailbox = mailbox
        self.node = node
        self.on_event = on_event
        self.events: list[GuardEvent] = []
        self._task = asyncio.get_running_loop().create_task(self._read())

    async def _read(self) -> None:
        while True:
            try:
                msg = await self.mailbox.receive()
            except ErldeployError:        # closed
                return
            self._take(msg)

    def _take(self, msg: Any) -> None:
        if not (isinstance(msg, tuple) and len(msg) == 3 and msg[0] == EVENT):
            return
        ev = msg[2]
        kind, data = (str(ev[0]), ev[1] if len(ev) == 2 else tuple(ev[1:])) if isinstance(ev, tuple) and ev \
            else (str(ev), None)
        event = GuardEvent(str(msg[1]), kind, data)
        self.events.append(event)
        if self.on_event:
            try:
                self.on_event(event)
            except Exception:      # a UI callback must not break the install
                pass

    async def settle(self, wait: float = 0.2) -> None:
        """Give events already on the wire a moment to be read."""
        await asyncio.sleep(wait)
        await asyncio.sleep(0)

    def find(self, kind: str) -> GuardEvent | None:
        return next((e for e in self.events if e.kind == kind), None)

    def crashes(self) -> list[CrashReport]:
        return [c for c in (e.crash for e in self.events) if c is not None]

    def close(self) -> None:
        self._task.cancel()
        self.mailbox.close()


# ---------------------------------------------------------------- decoding helpers

def _guard_result(node: str, vsn: str, reply: Any, watch: _GuardWatch) -> GuardResult:
    if isinstance(reply, tuple) and len(reply) == 2 and reply[0] == "ok":
        rep = reply[1] if isinstance(reply[1], dict) else {}
        return _with_report(GuardResult(node, vsn, True), rep, watch)
    if isinstance(reply, tuple) and len(reply) == 4 and reply[0] == "error":
        _, stage, reason, rep = reply
        res = GuardResult(node, vsn, False, stage=str(stage), reason=reason, reason_text=_text(reason))
        res = _with_report(res, rep if isinstance(rep, dict) else {}, watch)
        err = rep.get("install_error") if isinstance(rep, dict) else None
        if isinstance(err, dict):
            res.root_cause = _text(err.get("root_cause"))
            res.node_restarting = bool(err.get("node_restarting"))
        rb = rep.get("rollback") if isinstance(rep, dict) else None
        if isinstance(rb, tuple) and len(rb) == 3 and rb[0] == "ok":
            res.rolled_back_to = _text(rb[2])
        if not res.root_cause and res.crashes:
            res.root_cause = "; ".join(map(str, res.crashes))
        return res
    raise AgentError(f"{node}: unexpected answer from the agent's guarded install: {_text(reply)}", node=node)


def _with_report(res: GuardResult, rep: dict, watch: _GuardWatch) -> GuardResult:
    res.from_vsn = _text(rep.get("from")) if rep.get("from") is not None else None
    res.timings_ms = {str(k): int(v) for k, v in (rep.get("timings") or {}).items()}
    res.crashes = [c for c in map(_crash, rep.get("crashes") or []) if c]
    res.errors = [c for c in map(_crash, rep.get("errors") or []) if c]
    res.releases = [(_text(v), str(s)) for v, s in rep.get("releases") or []]
    res.events = list(watch.events)
    if not res.crashes:           # the node restarted before it could report them
        res.crashes = watch.crashes()
    return res


def _crash(m: Any) -> CrashReport | None:
    if not isinstance(m, dict):
        return None
    return CrashReport(str(m.get("kind", "error")), _text(m.get("who")), _text(m.get("reason")),
                       _text(m.get("text")))


def _verify_spec(verify: Any) -> Any:
    if verify is None:
        return UNDEFINED
    if isinstance(verify, str):
        mod, sep, fun = verify.partition(":")
        if not sep or not mod or not fun:
            raise AgentError(f"verify must be MOD:FUN, got {verify!r}")
        return (Atom(mod), Atom(fun), [])
    if isinstance(verify, tuple) and len(verify) in (2, 3):
        mod, fun, *rest = verify
        return (Atom(str(mod)), Atom(str(fun)), list(rest[0]) if rest else [])
    raise AgentError(f"verify must be MOD:FUN or (mod, fun, args), got {verify!r}")


def _pairs(apps: dict[str, str] | Iterable[tuple[str, str]] | None) -> list[tuple[str, str]]:
    if not apps:
        return []
    if isinstance(apps, dict):
        return list(apps.items())
    return [(str(a), str(v)) for a, v in apps]


def _is_undef(reason: Any, mod: str) -> bool:
    """{'EXIT', {undef, [{Mod, ...} | _]}} for a module that is not loaded."""
    r = reason
    while isinstance(r, tuple) and r and r[0] in ("EXIT", "badrpc"):
        r = r[1]
    return (isinstance(r, tuple) and len(r) == 2 and r[0] == "undef" and isinstance(r[1], list) and bool(r[1])
            and isinstance(r[1][0], tuple) and str(r[1][0][0]) == mod)


def _error_reason(r: Any) -> Any:
    if isinstance(r, tuple) and len(r) == 2 and r[0] == "error":
        return r[1]
    return r


def _text(v: Any) -> str:
    """Erlang-ish text for a decoded term; binaries as UTF-8."""
    if v is None:
        return ""
    if isinstance(v, (bytes, bytearray)):
        return bytes(v).decode("utf-8", "replace")
    if isinstance(v, str):
        return str(v)
    try:
        from ..term.format import format_term
        return format_term(v)
    except Exception:
        return repr(v)


def _plain(v: Any) -> Any:
    """Decoded terms to JSON-friendly values: binaries to str, atoms/keys to str."""
    if isinstance(v, dict):
        return {str(k): _plain(x) for k, x in v.items()}
    if isinstance(v, (bytes, bytearray)):
        return bytes(v).decode("utf-8", "replace")
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    if isinstance(v, (Pid,)):
        return str(v)
    if isinstance(v, str):
        return str(v)
    return v
