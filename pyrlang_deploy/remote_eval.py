"""Evaluate Erlang source on a node with only stock modules (erl_scan, erl_parse, erl_eval).

Used by `erldeploy eval` and by steps that must happen in one place on the node
(hash a file there instead of shipping it back) when the agent is not loaded.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from .errors import RpcError

Rpc = Callable[..., Awaitable[Any]]


async def eval_erlang(rpc: Rpc, node: str, source: str, bindings: dict[str, Any] | None = None,
                      *, timeout: float | None = None, io: Callable[[str], None] | None = None) -> Any:
    """Evaluate `source` (one or more expressions, final '.') and return the last value.

    `bindings` maps Erlang variable names to (small) values, so data is never spliced into text.
    Syntax errors raise RpcError with erl_scan/erl_parse's own message.
    """
    from .term import Atom, format_term

    text = source if source.rstrip().endswith(".") else source + "."
    scanned = await rpc(node, "erl_scan", "string", [text])
    if not (isinstance(scanned, tuple) and scanned[0] == "ok"):
        raise RpcError(f"{node}: syntax error: {await _explain(rpc, node, scanned)}",
                       node=node, reason=scanned)
    parsed = await rpc(node, "erl_parse", "parse_exprs", [scanned[1]])
    if not (isinstance(parsed, tuple) and parsed[0] == "ok"):
        raise RpcError(f"{node}: syntax error: {await _explain(rpc, node, parsed)}",
                       node=node, reason=parsed)
    # built on the node: the binding structure differs between OTP versions (orddict, map)
    binds = await rpc(node, "erl_eval", "new_bindings", [])
    for k, v in (bindings or {}).items():
        binds = await rpc(node, "erl_eval", "add_binding", [Atom(k), v, binds])
    kw: dict[str, Any] = {"io": io}
    if timeout is not None:
        kw["timeout"] = timeout
    value = await rpc(node, "erl_eval", "exprs", [parsed[1], binds], **kw)
    if isinstance(value, tuple) and len(value) == 3 and value[0] == "value":
        return value[1]
    raise RpcError(f"{node}: unexpected eval result {format_term(value)}", node=node, reason=value)


async def _explain(rpc: Rpc, node: str, err: Any) -> str:
    from .release.terms import show, text

    # {error, {Location, Module, Descriptor}, EndLocation}
    try:
        if isinstance(err, tuple) and err[0] == "error" and isinstance(err[1], tuple) and len(err[1]) == 3:
            loc, mod, desc = err[1]
            msg = await rpc(node, str(mod), "format_error", [desc])
            return f"line {loc if isinstance(loc, int) else loc[0] if isinstance(loc, tuple) else loc}: {text(msg)}"
    except RpcError:
        pass
    return show(err)
