"""The controller's side of the on-node agent (Erlang sources in agent/, beams in
pyrlang_deploy/agent/).

    beams.py    the shipped beams; load into / remove from a node
    upload.py   chunked streaming upload with a window and the node's digest check
    guard.py    the guarded install and the watch over its live events
    lease.py    the one lease renewer
    replies.py  pure decoding of every answer the agent gives (tested on literal terms)
    phases.py   the guard's phase names, checked against erldeploy_guard.erl by a test
    client.py   AgentClient: one object over all of it, one node per call
"""

from .beams import MODULES, AgentBeams, shipped_beams
from .client import AgentClient
from .replies import AgentStatus, CrashReport, GuardEvent, GuardResult

__all__ = ["MODULES", "AgentBeams", "AgentClient", "AgentStatus", "CrashReport", "GuardEvent", "GuardResult",
           "shipped_beams"]
