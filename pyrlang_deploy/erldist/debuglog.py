"""The distribution layer's loggers, without importing ``logging`` until it matters.

``logging`` (with the traceback, threading and tokenize modules it loads) is a
large share of a one-node CLI command's start-up. Below WARNING a record goes
nowhere unless someone configured logging, and configuring it means importing
it; so ``debug`` does nothing while ``logging`` is not in ``sys.modules``, and
anything at WARNING or above (which Python's last-resort handler prints)
imports it and logs as usual.
"""

from __future__ import annotations

import sys

TYPE_CHECKING = False  # typing is not imported at run time: see cli/fastpath.py
if TYPE_CHECKING:
    from typing import Any


class Logger:
    __slots__ = ("name", "_real")

    def __init__(self, name: str) -> None:
        self.name = name
        self._real: Any = None

    def _logger(self) -> Any:
        if self._real is None:
            import logging

            self._real = logging.getLogger(self.name)
        return self._real

    def debug(self, msg: str, *args: Any, **kw: Any) -> None:
        if "logging" in sys.modules:
            self._logger().debug(msg, *args, **kw)

    def exception(self, msg: str, *args: Any, **kw: Any) -> None:
        self._logger().exception(msg, *args, **kw)


def get_logger(name: str) -> Logger:
    return Logger(name)
