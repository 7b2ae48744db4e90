"""--syntax elixir|erlang: how terms are read from arguments and printed back.

Without --syntax (or ERLDEPLOY_SYNTAX, or the environment's `syntax` key) the nodes
decide: elixir when the first one runs the `elixir` application (one RPC).
"""

from __future__ import annotations

from collections.abc import Callable

from ..errors import ErldeployError, TermSyntaxError, UsageError

TYPE_CHECKING = False  # typing is not imported at run time: see cli/fastpath.py
if TYPE_CHECKING:
    from typing import Any


async def decide(syntax: str | None, cluster: Any) -> str:
    if syntax:
        return syntax
    if not cluster.members:
        return "erlang"
    try:
        apps = await cluster.rpc(cluster.members[0], "application", "which_applications", [])
    except ErldeployError:
        return "erlang"
    running = isinstance(apps, list) and any(isinstance(a, tuple) and a and a[0] == "elixir" for a in apps)
    return "elixir" if running else "erlang"


def printer(syntax: str) -> Callable[..., str]:
    """format(term, node=None) -> text in that syntax. In Elixir the answering node's
    pids print as #PID<0.85.0>; Erlang output keeps the node name in them, as before."""
    if syntax == "elixir":
        from ..term.elixir_format import format_elixir
        return format_elixir
    from ..term.format import format_term
    return lambda term, node=None: format_term(term)


def parse_args(syntax: str, args: tuple[str, ...] | list[str]) -> list[Any]:
    """CLI arguments -> terms; a syntax error is a usage error (exit 2)."""
    if not args:
        return []
    if syntax == "elixir":
        from ..term.elixir_parse import parse_elixir as parse
    else:
        from ..term.parse import parse_term as parse
    try:
        return [parse(a) for a in args]
    except TermSyntaxError as e:
        raise UsageError(f"bad argument: {e}") from None


def check_args_either(args: tuple[str, ...] | list[str]) -> None:
    """Before the nodes say which syntax: refuse arguments that are terms in neither."""
    for a in args:
        try:
            parse_args("erlang", [a])
        except UsageError as erlang_error:
            try:
                parse_args("elixir", [a])
            except UsageError:
                raise erlang_error from None


def name_arg(syntax: str, text: str) -> str:
    """A module or function argument: in Elixir, `MyApp.Release` is 'Elixir.MyApp.Release';
    in Erlang a quoted atom ('Elixir.MyApp.Release') loses its quotes."""
    if syntax != "elixir":
        if not text.startswith("'"):
            return text
        from ..term.parse import parse_term
        try:
            value = parse_term(text)
        except TermSyntaxError as e:
            raise UsageError(f"bad module or function name: {e}") from None
        if not isinstance(value, str):
            raise UsageError(f"bad module or function name: {text} is not an atom")
        return str(value)
    from ..term.elixir_parse import elixir_name
    try:
        return elixir_name(text)
    except TermSyntaxError as e:
        raise UsageError(f"bad module or function name: {e}") from None
