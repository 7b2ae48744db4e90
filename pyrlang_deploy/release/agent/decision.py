"""The controller's side of a run's one decision (agent/erldeploy_decision.erl).

The decision process lives on the first node the run changes. The controller claims
commit there once every guard is ready (or abort when the run fails); a guard whose
lease runs out claims abort there. Whoever claims first decides, once, and every guard
is told: a controller that dies or pauses cannot leave some nodes permanent on the new
release and others rolled back.
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from ...errors import AgentError
from ...term.types import Atom, Pid
from ..terms import is_tagged, show, text

Rpc = Callable[..., Awaitable[Any]]
LINGER_MIN_MS = 60_000     # a decided process waits this long (or for every guard's ack) before ending


@dataclass(frozen=True)
class Decision:
    run: bytes          # unique per run: a late message of an earlier run never counts
    pid: Pid
    node: str
    peers: tuple[str, ...]

    def guard_options(self) -> dict[Any, Any]:
        return {Atom("run"): self.run, Atom("decider"): self.pid, Atom("peers"): [Atom(n) for n in self.peers]}


async def start(rpc: Rpc, node: str, owner: Pid, peers: list[str], lease_s: float) -> Decision:
    """Start the run's decision process on ``node``; ``owner``'s death decides abort."""
    run = secrets.token_hex(8).encode()
    linger = max(LINGER_MIN_MS, int(lease_s * 4000))
    r = await rpc(node, "erldeploy_decision", "start", [run, owner, [Atom(n) for n in peers], linger])
    if not (is_tagged(r, "ok", 2) and isinstance(r[1], Pid)):
        raise AgentError(f"{node}: cannot start the run's decision process: {show(r)}", node=node)
    return Decision(run, r[1], node, tuple(peers))


async def claim(rpc: Rpc, d: Decision, what: str) -> tuple[str, str]:
    """Claim ``commit`` or ``abort``; returns the decision that holds and who took it."""
    r = await rpc(d.node, "erldeploy_decision", "decide", [d.pid, d.run, Atom(what)], timeout=30.0)
    if is_tagged(r, "decided", 3):
        return str(r[1]), _who(r[2])
    raise AgentError(f"{d.node}: the run's decision could not be taken: {show(r)}", node=d.node)


def _who(why: Any) -> str:
    if why == "controller":
        return "by this run"
    if is_tagged(why, "lease_expired", 2):
        return f"by {text(why[1])}, whose lease ran out"
    if is_tagged(why, "controller_down", 2):
        return "when the controller was lost"
    return show(why)
