"""The guard's phases, as agent/erldeploy_guard.erl names them (`phase(Name, S)`).

tests/release/test_agent_replies.py reads the Erlang source and fails when the two
lists differ, so a phase added there must be added here.
"""

from __future__ import annotations

# in the order a guarded install goes through them
PHASES = ("starting", "checking", "installing", "verifying", "waiting_commit", "committing",
          "committed", "resolving", "rolling_back", "ended")

# the guard has answered its controller and is only exiting: unloading the agent is safe
FINISHED = frozenset({"committed", "ended"})

# the phases in which the guard accepts a lease renewal (erldeploy_guard:request/2)
RENEWABLE = frozenset({"checking", "installing", "verifying", "waiting_commit"})
