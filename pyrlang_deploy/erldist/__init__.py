"""The hidden node: epmd client, handshake, connection, local processes, RPC.

    async with LocalNode(cookie=...) as node:          # erldeploy-<random>@<host>
        await node.rpc("a@host", "erlang", "node", [])  # rex RPC; io comes back
        async with node.mailbox() as mb:               # a pid with selective receive
            ref = await mb.monitor(pid)

Layers, each its own module: ``flags`` (DFLAG_*), ``epmd``, ``handshake`` (sans-IO),
``framing`` and ``control`` (sans-IO), ``proctable`` (sans-IO: pids, names, links,
monitors; returns the effects to carry out), ``inbound`` (what each frame read
means), ``nodecore`` (identity and every control message, shared by both drivers),
``call`` (one rex call, its reply and io), ``io_server``, ``process`` (mailboxes).
Two drivers carry them: asyncio - ``connection``, ``node`` (LocalNode), ``rpc`` -
and blocking - ``blocking`` (BlockingNode: one peer, no event loop, for the CLI's
one-node commands).
Importing this package stays cheap: names load on first use.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing is not imported at run time: see cli/fastpath.py
if TYPE_CHECKING:
    from typing import Any


__all__ = ["Connection", "DFlag", "LocalNode", "Mailbox", "read_cookie_file"]

_WHERE = {
    "Connection": ".connection",
    "DFlag": ".flags",
    "LocalNode": ".node",
    "Mailbox": ".process",
    "read_cookie_file": ".node",
}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        from importlib import import_module

        return getattr(import_module(_WHERE[name], __name__), name)
    raise AttributeError(name)
