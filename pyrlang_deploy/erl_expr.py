"""Erlang expressions built as erl_parse abstract forms, evaluated in one RPC.

remote_eval.eval_erlang sends text and pays three round trips (erl_scan, erl_parse,
erl_eval). A fixed expression known in advance (doctor's facts) skips the first two:
build the abstract form here and send it straight to ``erl_eval:exprs(Forms, [])``
(``[]`` is an empty orddict, which every OTP's erl_eval accepts as bindings).

    e = tuple_(call("erlang", "node"), catch(call("erlang", "whereis", atom("heart"))))
    value = await eval_forms(cluster.rpc, node, [e])

The form shapes are the documented abstract format (ERTS "The Abstract Format"),
stable since OTP 18; the annotation is a plain line number.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from .errors import RpcError
from .term.types import Atom

_L = 1  # the annotation: line 1
Form = tuple


def atom(name: str) -> Form:
    return (Atom("atom"), _L, Atom(name))


def integer(n: int) -> Form:
    return (Atom("integer"), _L, n)


def string(s: str) -> Form:
    # {string, Anno, Chars}: an empty string is [] once encoded, as erl_parse makes it
    return (Atom("string"), _L, s)


def tuple_(*elements: Form) -> Form:
    return (Atom("tuple"), _L, list(elements))


def call(module: str, function: str, *args: Form) -> Form:
    """MODULE:FUNCTION(ARGS...)"""
    return (Atom("call"), _L, (Atom("remote"), _L, atom(module), atom(function)), list(args))


def catch(expr: Form) -> Form:
    """catch EXPR: an exception becomes the value {'EXIT', Reason} (or the thrown term)."""
    return (Atom("catch"), _L, expr)


def map_(pairs: dict[str, Form]) -> Form:
    """#{key => EXPR, ...} with atom keys."""
    return (Atom("map"), _L, [(Atom("map_field_assoc"), _L, atom(k), v) for k, v in pairs.items()])


Rpc = Callable[..., Awaitable[Any]]


async def eval_forms(rpc: Rpc, node: str, exprs: list[Form], *, timeout: float | None = None) -> Any:
    """Evaluate the expressions on `node` (one RPC) and return the last one's value."""
    kw = {} if timeout is None else {"timeout": timeout}
    value = await rpc(node, "erl_eval", "exprs", [exprs, []], **kw)
    if isinstance(value, tuple) and len(value) == 3 and value[0] == "value":
        return value[1]
    from .term import format_term
    raise RpcError(f"{node}: unexpected eval result {format_term(value)}", node=node, reason=value)


def is_exit(v: Any) -> bool:
    """The value of a `catch` that caught an error."""
    return isinstance(v, tuple) and len(v) == 2 and v[0] == "EXIT"
