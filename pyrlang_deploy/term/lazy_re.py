"""A regex compiled at its first use, not at import.

Compiling the wide Unicode classes of decoder.py and format.py cost ~15 ms at every
CLI start, for patterns a `rpc ... erlang node` mostly never reaches.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing is not imported at run time: see cli/fastpath.py
if TYPE_CHECKING:
    from typing import Any


class LazyMatch:
    """``LazyMatch(PATTERN, "fullmatch")(s)`` is ``re.compile(PATTERN).fullmatch(s)``."""

    __slots__ = ("_pattern", "_method", "_bound")

    def __init__(self, pattern: str | bytes, method: str) -> None:
        self._pattern, self._method, self._bound = pattern, method, None

    def __call__(self, text: Any) -> Any:
        bound = self._bound
        if bound is None:
            import re

            bound = self._bound = getattr(re.compile(self._pattern), self._method)
        return bound(text)
