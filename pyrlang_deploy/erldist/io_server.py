"""The Erlang io protocol, server side: we are the group leader of our RPCs.

A remote ``io:format`` sends ``{io_request, From, ReplyAs, Request}`` to its group
leader and blocks until ``{io_reply, ReplyAs, Reply}`` comes back. Output
requests are written to a ``write(str)`` callback; input requests get ``eof``
(there is no terminal behind us); options and geometry get ``{error, enotsup}``.

``{put_chars, Enc, M, F, A}`` (what io:format sends) is formatted by calling
``M:F(A...)`` on the requesting node, so formatting is exactly Erlang's.
"""

from __future__ import annotations

from collections.abc import Callable

from ..errors import ErldeployError
from ..term.types import Atom, ImproperList, Pid
from .debuglog import get_logger

TYPE_CHECKING = False  # typing is not imported at run time: see cli/fastpath.py
if TYPE_CHECKING:
    from typing import Any

    from .node import LocalNode

log = get_logger(__name__)

IO_REQUEST = Atom("io_request")
IO_REPLY = Atom("io_reply")
OK = Atom("ok")
EOF = Atom("eof")
ERROR = Atom("error")
UNICODE = Atom("unicode")
LATIN1 = Atom("latin1")
_ENOTSUP = (ERROR, Atom("enotsup"))
_BAD_REQUEST = (ERROR, Atom("request"))
_GETOPTS = [(Atom("binary"), False), (Atom("encoding"), UNICODE)]


def is_io_request(msg: Any) -> bool:
    return type(msg) is tuple and len(msg) == 4 and msg[0] == "io_request" and isinstance(msg[1], Pid)


def chardata_to_str(data: Any, encoding: str = "unicode") -> str:
    """Flatten Erlang chardata (charlists, binaries, nested lists) into text."""
    parts: list[str] = []
    stack = [data]
    codec = "utf-8" if encoding == "unicode" else "latin-1"
    while stack:
        d = stack.pop()
        if isinstance(d, str):
            parts.append(d)
        elif isinstance(d, (bytes, bytearray)):
            parts.append(bytes(d).decode(codec, "replace"))
        elif isinstance(d, int) and not isinstance(d, bool):
            parts.append(chr(d) if 0 <= d <= 0x10FFFF else "\ufffd")
        elif isinstance(d, list):
            stack.extend(reversed(d))
        elif isinstance(d, ImproperList):
            stack.append(d.tail)
            stack.extend(reversed(d.elements))
        else:
            raise ValueError(f"not chardata: {type(d).__name__}")
    return "".join(parts)


class IoServer:
    """Answers io requests sent to one of our pids, writing output to ``write``."""

    __slots__ = ("node", "pid", "write")

    def __init__(self, node: LocalNode, pid: Pid, write: Callable[[str], Any]) -> None:
        self.node = node
        self.pid = pid
        self.write = write

    def handle(self, msg: tuple) -> None:
        """Handle ``{io_request, From, ReplyAs, Request}``; replies now or after formatting."""
        _, sender, reply_as, request = msg
        if _needs_remote(request):
            self.node.spawn(self._handle_async(sender, reply_as, request))
            return
        self._reply(sender, reply_as, self._handle_sync(request))

    def _reply(self, to: Pid, reply_as: Any, reply: Any) -> None:
        self.node.send_nowait(to, (IO_REPLY, reply_as, reply), sender=self.pid)

    def _output(self, text: str) -> Any:
        try:
            self.write(text)
        except Exception as exc:  # a broken sink must not break the remote caller
            log.debug("io sink failed: %s", exc)
            return (ERROR, Atom("terminated"))
        return OK

    def _handle_sync(self, req: Any) -> Any:
        if type(req) is not tuple or not req:
            return _GETOPTS if req == "getopts" else _BAD_REQUEST
        op, n = req[0], len(req)
        try:
            if op == "put_chars":
                if n == 3:  # {put_chars, Encoding, Chars}
                    return self._output(chardata_to_str(req[2], str(req[1])))
                if n == 2:  # {put_chars, Chars}: the old latin-1 form
                    return self._output(chardata_to_str(req[1], "latin1"))
            elif op == "requests" and n == 2 and isinstance(req[1], list):
                reply: Any = OK
                for sub in req[1]:
                    reply = self._handle_sync(sub)
                    if type(reply) is tuple and reply and reply[0] == "error":
                        break
                return reply
            elif op in ("get_chars", "get_line", "get_until", "get_password"):
                return EOF  # nobody types into an RPC
            elif op in ("setopts", "get_geometry"):
                return _ENOTSUP
        except ValueError:
            return (ERROR, Atom("put_chars"))
        return _BAD_REQUEST

    async def _handle_async(self, sender: Pid, reply_as: Any, request: Any) -> None:
        try:
            reply = await self._handle_any(sender, request)
        except ErldeployError as exc:
            log.debug("io request from %s failed: %s", sender, exc)
            reply = (ERROR, Atom("put_chars"))
        self._reply(sender, reply_as, reply)

    async def _handle_any(self, sender: Pid, req: Any) -> Any:
        if type(req) is tuple and req and req[0] == "put_chars" and len(req) in (4, 5):
            enc, mfa = (str(req[1]), req[2:]) if len(req) == 5 else ("latin1", req[1:])
            m, f, a = mfa
            # format on the node that asked, with io's own functions
            chars = await self.node.rpc(str(sender.node), str(m), str(f), list(a), timeout=30.0)
            try:
                return self._output(chardata_to_str(chars, enc))
            except ValueError:
                return (ERROR, Atom("put_chars"))
        if type(req) is tuple and len(req) == 2 and req[0] == "requests" and isinstance(req[1], list):
            reply: Any = OK
            for sub in req[1]:
                reply = await self._handle_any(sender, sub)
                if type(reply) is tuple and reply and reply[0] == "error":
                    break
            return reply
        return self._handle_sync(req)


def _needs_remote(req: Any) -> bool:
    if type(req) is not tuple or not req:
        return False
    if req[0] == "put_chars":
        return len(req) in (4, 5)
    if req[0] == "requests" and len(req) == 2 and isinstance(req[1], list):
        return any(_needs_remote(r) for r in req[1])
    return False
