"""Evaluate Elixir source on a node with its own `Code` module (one RPC).

The Elixir counterpart of remote_eval.eval_erlang: `Code.eval_string(Source)` runs
under the RPC's group leader, so `IO.puts` output streams back through `io` as it
happens. An exception on the node becomes one RpcError line in Elixir's own words,
`** (CompileError) nofile:1: undefined function foo/0 ...`, asked of the node's
`Exception.format_banner/2` (a second RPC, only on failure).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from .errors import RpcError
from .term.types import Atom

Rpc = Callable[..., Awaitable[Any]]


async def eval_elixir(rpc: Rpc, node: str, source: str, *, timeout: float | None = None,
                      io: Callable[[str], None] | None = None) -> Any:
    """Evaluate `source` on `node` and return its value."""
    kw: dict[str, Any] = {"io": io}
    if timeout is not None:
        kw["timeout"] = timeout
    try:
        result = await rpc(node, "Elixir.Code", "eval_string", [source.encode("utf-8")], **kw)
    except RpcError as e:
        exc = _exception_of(e.reason)
        if exc is None:
            if _is_undef_code(e.reason):
                raise RpcError(f"{node}: Elixir is not available there (no Code module); "
                               "evaluate Erlang with eval instead", node=node, reason=e.reason) from None
            raise
        banner = await _banner(rpc, node, exc)
        raise RpcError(f"{node}: {banner}", node=node, reason=e.reason) from None
    if isinstance(result, tuple) and len(result) == 2:
        return result[0]
    from .term import format_term
    raise RpcError(f"{node}: unexpected eval result {format_term(result)}", node=node, reason=result)


def _exception_of(reason: Any) -> dict | None:
    """The Elixir exception struct inside an RPC failure: {'EXIT', {Exc, Stack}}."""
    r = reason
    for _ in range(3):  # {badrpc, {'EXIT', {E, Stack}}} in its possible wrappings
        if isinstance(r, dict) and r.get(Atom("__exception__")) is True:
            return r
        if isinstance(r, tuple) and len(r) == 2:
            r = r[1] if r[0] in ("badrpc", "EXIT") else r[0]
        else:
            return None
    return r if isinstance(r, dict) and r.get(Atom("__exception__")) is True else None


def _is_undef_code(reason: Any) -> bool:
    text = repr(reason)
    return "undef" in text and "Elixir.Code" in text


async def _banner(rpc: Rpc, node: str, exc: dict) -> str:
    try:
        text = await rpc(node, "Elixir.Exception", "format_banner", [Atom("error"), exc])
        banner = bytes(text).decode("utf-8", "replace") if isinstance(text, (bytes, bytearray)) else str(text)
    except RpcError:
        from .term.elixir_format import format_elixir
        banner = format_elixir(exc)
    # one line: the banner of a CompileError carries newlines
    return " ".join(banner.split())
