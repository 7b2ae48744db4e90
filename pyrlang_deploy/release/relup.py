"""The relup file: which versions a release can be reached from and go back to."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .terms import text


@dataclass
class Relup:
    vsn: str
    up_from: dict[str, list[Any]]    # from-version -> instructions
    down_to: dict[str, list[Any]]    # to-version -> instructions

    def restarts_emulator(self, other: str) -> bool:
        instrs = self.up_from.get(other) or self.down_to.get(other) or []
        return any(i == "restart_emulator" or (isinstance(i, tuple) and i and i[0] == "restart_new_emulator")
                   or i == "restart_new_emulator" for i in instrs)


def parse_relup(term: Any) -> Relup:
    vsn, ups, downs = term
    return Relup(vsn=text(vsn),
                 up_from={text(e[0]): list(e[2]) for e in ups},
                 down_to={text(e[0]): list(e[2]) for e in downs})
