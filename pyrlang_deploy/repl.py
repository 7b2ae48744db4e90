"""`erldeploy shell`: a Python prompt with top-level `await`, connected to the cluster.

The event loop (and so the hidden node's connections, ticks and io server) runs in the
main thread; the prompt runs in a second thread and hands each statement to the loop,
so a slow call never stops the connections from ticking. Values print in Erlang syntax.
"""

from __future__ import annotations

import ast
import asyncio
import code
import concurrent.futures
import inspect
import os
import sys
import threading
import types
from pathlib import Path
from typing import Any

from .errors import ErldeployError

BANNER = """erldeploy shell — connected to {members}
  cluster            the connected Cluster (cluster.members, cluster.unreachable)
  nodes              list of member node names
  await rpc(node, "erlang", "memory")           call a function on a node
  await rpc_all("erlang", "node")               ... on every member
  await erl(node, "lists:sum([1,2,3]).")        evaluate Erlang source on a node
  await ex(node, "Enum.sum([1, 2, 3])")          evaluate Elixir source on a node
  await status()     what every node runs       await install("0.0.2", tar=...)
  Atom("ok"), Pid, Reference, format_term(x), parse_term("{a, [1]}")
Values print in {syntax} syntax. Ctrl-D leaves."""

# how values print: set by run_shell from --syntax (or what the nodes run)
_syntax = "erlang"


HIGHLIGHT_MAX = 20_000  # characters of a value the prompt colours as Erlang


def history_path() -> Path:
    return Path(os.environ.get("ERLDEPLOY_HISTORY", Path.home() / ".erldeploy_history"))


class ClusterConsole(code.InteractiveConsole):
    def __init__(self, namespace: dict[str, Any], loop: asyncio.AbstractEventLoop):
        super().__init__(namespace, filename="<erldeploy>")
        self.compile.compiler.flags |= ast.PyCF_ALLOW_TOP_LEVEL_AWAIT
        self.loop = loop
        self.running: concurrent.futures.Future | None = None

    def runcode(self, codeobj: types.CodeType) -> None:
        func = types.FunctionType(codeobj, self.locals)
        try:
            result = func()
            if inspect.iscoroutine(result):
                self.running = asyncio.run_coroutine_threadsafe(result, self.loop)
                try:
                    self.running.result()
                finally:
                    self.running = None
        except SystemExit:
            raise
        except KeyboardInterrupt:
            self.write("KeyboardInterrupt\n")
        except concurrent.futures.CancelledError:
            self.write("cancelled\n")
        except ErldeployError as e:
            # expected failures (node down, badrpc...) are one line; the prompt lives on
            self.write(f"error: {e}\n")
        except BaseException:
            self.showtraceback()


def _displayhook(value: Any) -> None:
    if value is None:
        return
    import builtins

    builtins._ = value
    from rich.text import Text

    from .cli.output import console
    from .release.report import InstallReport
    from .release.status import ClusterStatus

    if isinstance(value, ClusterStatus):
        from .cli.render import render_status
        render_status(value)
        return
    if isinstance(value, InstallReport):
        from .cli.render import render_install_report
        render_install_report(value)
        return
    from .term.format import safe_repr
    if _syntax == "elixir":
        from .term.elixir_format import format_elixir as format_term
    else:
        from .term.format import format_term
    try:
        text = format_term(value)
    except Exception:  # not a term (a Python object): its repr, iteratively (never rich's recursive pprint)
        console().print(Text(safe_repr(value)))
        return
    if len(text) > HIGHLIGHT_MAX:  # colouring a huge reply takes seconds per 100 KB: plain text
        console().print(Text(text), soft_wrap=True)
        return
    from rich.syntax import Syntax
    console().print(Syntax(text, _syntax, theme="ansi_dark", background_color="default", word_wrap=True))


def _namespace(cluster: Any) -> dict[str, Any]:
    from . import term
    from .remote_eval import eval_erlang

    def out(text: str) -> None:
        sys.stdout.write(text)
        sys.stdout.flush()

    async def rpc(node: str, module: str, function: str, args: Any = (), timeout: float | None = None) -> Any:
        return await cluster.rpc(node, module, function, list(args), timeout=timeout, io=out)

    async def rpc_all(module: str, function: str, args: Any = ()) -> dict[str, Any]:
        res = await cluster.rpc_all(module, function, args, io=out)
        return {n: (r.value if r.ok else f"error: {r.error}") for n, r in res.items()}

    async def erl(node: str, source: str) -> Any:
        return await eval_erlang(cluster.rpc, node, source, io=out)

    async def ex(node: str, source: str) -> Any:
        from .elixir_eval import eval_elixir
        return await eval_elixir(cluster.rpc, node, source, io=out)

    ns: dict[str, Any] = {
        "__name__": "__console__", "__doc__": None, "asyncio": asyncio,
        "cluster": cluster, "nodes": list(cluster.members), "rpc": rpc, "rpc_all": rpc_all, "erl": erl, "ex": ex,
        "status": cluster.status, "install": cluster.install, "rollback": cluster.rollback,
        "format_term": term.format_term, "parse_term": term.parse_term,
    }
    for name in ("Atom", "Pid", "Reference", "Port", "ExportFun", "BitString", "ImproperList"):
        ns[name] = getattr(term, name)
    return ns


def _setup_readline(ns: dict[str, Any]) -> None:
    try:
        import readline
        import rlcompleter
    except ImportError:  # no readline on this Python: plain input still works
        return
    readline.set_completer(rlcompleter.Completer(ns).complete)
    readline.parse_and_bind("tab: complete")
    path = history_path()
    try:
        readline.read_history_file(path)
    except (FileNotFoundError, OSError):
        pass
    readline.set_history_length(5000)
    import atexit

    def save() -> None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            readline.write_history_file(path)
        except OSError:
            pass
    atexit.register(save)


async def run_shell(cluster: Any, syntax: str = "erlang") -> int:
    """Run the prompt in a thread; statements run on this (the caller's) event loop.

    Ctrl-C cancels the statement that is running, never the shell or the connections.
    Values print in `syntax` (erlang or elixir).
    """
    import signal

    global _syntax
    _syntax = syntax
    loop = asyncio.get_running_loop()
    ns = _namespace(cluster)
    console = ClusterConsole(ns, loop)
    finished: asyncio.Future[int] = loop.create_future()

    def on_sigint() -> None:
        fut = console.running
        if fut is not None and not fut.done():
            fut.cancel()

    def prompt_thread() -> None:
        code_ = 0
        try:
            _setup_readline(ns)
            sys.displayhook = _displayhook
            banner = BANNER.replace("{members}", ", ".join(cluster.members) or "no node").replace(
                "{syntax}", "Elixir" if syntax == "elixir" else "Erlang")
            for e in cluster.unreachable.values():
                banner += f"\nwarning: {e}"
            console.interact(banner=banner, exitmsg="")
        except SystemExit as e:
            code_ = e.code if isinstance(e.code, int) else 0
        finally:
            loop.call_soon_threadsafe(lambda: finished.done() or finished.set_result(code_))

    try:
        loop.add_signal_handler(signal.SIGINT, on_sigint)
    except (NotImplementedError, RuntimeError):
        pass
    threading.Thread(target=prompt_thread, name="erldeploy-prompt", daemon=True).start()
    try:
        return await finished
    finally:
        try:
            loop.remove_signal_handler(signal.SIGINT)
        except (NotImplementedError, RuntimeError):
            pass
