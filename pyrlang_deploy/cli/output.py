"""Rendering results: rich for people, one JSON document for pipelines."""

from __future__ import annotations

import sys

from ..errors import ErldeployError

TYPE_CHECKING = False  # typing is not imported at run time: see cli/fastpath.py
if TYPE_CHECKING:
    from typing import Any


def emit_json(doc: Any) -> None:
    from ..jsonable import dumps, to_json

    sys.stdout.write(dumps(to_json(doc)))
    sys.stdout.write("\n")
    sys.stdout.flush()


def error_kind(e: BaseException) -> str:
    return type(e).__name__


def report_error(e: ErldeployError, *, json_mode: bool) -> None:
    """One line on stderr; with --json also a JSON document on stdout."""
    print(f"erldeploy: error: {e}", file=sys.stderr)
    if json_mode:
        emit_json({"ok": False, "error": {"kind": error_kind(e), "message": str(e), "node": e.node,
                                           "exit_code": e.exit_code}})


_console = None
_err_console = None


def console():
    global _console
    if _console is None:
        from rich.console import Console
        _console = Console(highlight=False)
    return _console


def err_console():
    global _err_console
    if _err_console is None:
        from rich.console import Console
        _err_console = Console(stderr=True, highlight=False)
    return _err_console
