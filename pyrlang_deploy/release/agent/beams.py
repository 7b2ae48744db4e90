"""The agent's compiled modules: the beams shipped in `pyrlang_deploy/agent`, and
loading them into a node with code:load_binary (never onto its disk) or removing them."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from importlib import resources
from typing import Any

from ...errors import AgentError, ErldeployError, NodeDown
from ...term.types import Atom, ExportFun
from . import replies

# Load order does not matter to the VM; keep the API module last so that
# "erldeploy_agent is loaded" implies the rest is too.
MODULES = ("erldeploy_fmt", "erldeploy_capture", "erldeploy_upload", "erldeploy_relay", "erldeploy_decision",
           "erldeploy_guard", "erldeploy_agent")
LOADED_AS = "erldeploy_agent (loaded over distribution)"   # what code:which/1 shows on the node
RPC_TIMEOUT = 30.0

Rpc = Callable[..., Awaitable[Any]]   # (node, mod, fun, args, timeout=...) -> reply


@dataclass(frozen=True)
class AgentBeams:
    beams: dict[str, bytes]      # module -> beam file contents
    md5: dict[str, str]          # module -> Mod:module_info(md5) as hex
    source_sha256: str

    @classmethod
    def shipped(cls) -> AgentBeams:
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


async def loaded_md5(rpc: Rpc, node: str) -> dict[str, str | None]:
    """module -> the md5 of what the node has loaded (None: not loaded), in at most two
    round trips: lists:map(fun erlang:module_loaded/1, ...), then the md5 of the loaded ones."""
    flags = await rpc(node, "lists", "map", [ExportFun(Atom("erlang"), Atom("module_loaded"), 1),
                                              [Atom(m) for m in MODULES]])
    if not isinstance(flags, list) or len(flags) != len(MODULES):
        raise AgentError(f"{node}: cannot tell which agent modules are loaded: {flags!r}", node=node)
    loaded = [m for m, f in zip(MODULES, flags) if f is True]
    md5s = await rpc(node, "lists", "zipwith", [ExportFun(Atom("erlang"), Atom("get_module_info"), 2),
                                                 [Atom(m) for m in loaded], [Atom("md5")] * len(loaded)]
                     ) if loaded else []
    got = dict(zip(loaded, md5s if isinstance(md5s, list) else []))
    return {m: replies.md5_hex(got[m]) if m in got else None for m in MODULES}


async def load(rpc: Rpc, node: str, beams: AgentBeams, have: dict[str, str | None]) -> bool:
    """Load every module whose loaded md5 differs from ours; True when it loaded something.
    A node with none of them loaded gets all in one code:atomic_load round trip."""
    stale = [m for m in MODULES if have.get(m) != beams.md5.get(m)]
    if stale and not any(have.values()):
        r = await rpc(node, "code", "atomic_load", [[(Atom(m), LOADED_AS, beams.beams[m]) for m in MODULES]])
        if r == "ok":
            return True
        # fall through: module by module, so the error names the module and its reason
    for m in stale:
        if have.get(m) is not None:
            # Another build is loaded: make room (old code must be gone before
            # load_binary can turn the current version into old code).
            await rpc(node, "code", "soft_purge", [Atom(m)])
        try:
            r = await rpc(node, "code", "load_binary", [Atom(m), LOADED_AS, beams.beams[m]])
        except NodeDown:
            raise
        except ErldeployError as e:
            raise AgentError(f"{node}: cannot load the agent ({m}): {e}", node=node) from None
        why = replies.loaded(r)
        if why is not None:
            raise AgentError(f"{node}: cannot load the agent ({m}): {why}", node=node)
    return bool(stale)


async def remove(rpc: Rpc, node: str) -> None:
    """purge, delete, purge every module, in one round trip:
    lists:zipwith(fun erlang:apply/2, [fun code:F/1...], [[M]...])."""
    steps = [(f, m) for m in MODULES for f in ("purge", "delete", "purge")]
    await rpc(node, "lists", "zipwith",
              [ExportFun(Atom("erlang"), Atom("apply"), 2),
               [ExportFun(Atom("code"), Atom(f), 1) for f, _ in steps],
               [[Atom(m)] for _, m in steps]])
