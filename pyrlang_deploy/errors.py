"""One exception hierarchy for everything erldeploy raises on purpose.

Each class carries the process exit code the CLI uses for it, so the CLI never
needs to know individual error types:
  1  the operation failed on a node
  2  usage error
  3  could not connect or authenticate
Messages are one line and name the node and the cause. They never contain the cookie.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing is not imported at run time: see cli/fastpath.py
if TYPE_CHECKING:
    from typing import Any



class ErldeployError(Exception):
    """Base of every expected failure. ``str(e)`` is the one-line message for users."""

    exit_code = 1

    def __init__(self, message: str, *, node: str | None = None) -> None:
        super().__init__(message)
        self.node = node


class UsageError(ErldeployError):
    exit_code = 2


# --- the term codec -------------------------------------------------------

class TermError(ErldeployError):
    exit_code = 2


class DecodeError(TermError):
    """Bytes that are not a valid, complete External Term Format term."""


class EncodeError(TermError):
    """A Python value with no Erlang counterpart."""


class TermSyntaxError(TermError):
    """Text that is not an Erlang term literal (CLI arguments)."""


# --- connecting -----------------------------------------------------------

def os_cause(exc: OSError) -> str:
    """An OSError in the errno's own words, lower case: asyncio's text ("connect call
    failed (...)") says less than the socket's, and both drivers must say the same."""
    import os

    if exc.errno:
        return os.strerror(exc.errno).lower()
    return (exc.strerror or str(exc) or type(exc).__name__).lower()


class ConnectError(ErldeployError):
    """Could not reach or authenticate to a node.

    :meth:`unreachable` and :meth:`timed_out` word the two commonest causes, the
    same for every driver (asyncio or blocking)."""

    exit_code = 3

    @classmethod
    def unreachable(cls, peer: str, host: str, port: int, exc: OSError, port_given: bool) -> ConnectError:
        where = " (port given, epmd not asked)" if port_given else ""
        return cls(f"cannot reach {peer} at {host}:{port}{where} ({os_cause(exc)})", node=peer)

    @classmethod
    def timed_out(cls, peer: str, timeout: float | None) -> ConnectError:
        return cls(f"timed out connecting to {peer} after {timeout:g}s", node=peer)


class EpmdUnreachable(ConnectError):
    pass


class NodeNotFound(ConnectError):
    pass


class CookieRejected(ConnectError):
    pass


class HandshakeError(ConnectError):
    pass


# --- talking to a connected node -----------------------------------------

class NodeDown(ErldeployError):
    """The connection to a node was lost while something waited on it.

    Built with :meth:`lost` (or :meth:`during_call`), so the text is the same
    wherever a connection is found gone.
    """

    @classmethod
    def lost(cls, peer: str, reason: str) -> NodeDown:
        return cls(f"connection to {peer} lost ({reason})", node=peer)

    @classmethod
    def during_call(cls, peer: str, mfa: str, reason: str) -> NodeDown:
        return cls(f"{peer} went down during the call to {mfa} ({reason})", node=peer)


class ReceiveTimeout(ErldeployError):
    pass


class MailboxClosed(ErldeployError):
    """A receive was waiting on a mailbox that got closed."""


class RpcError(ErldeployError):
    """A remote call failed: an exception on the node or a ``{badrpc, Reason}``.

    ``reason`` is the decoded Erlang term; the message shows it in Erlang syntax.
    """

    def __init__(self, message: str, *, node: str | None = None, reason: Any = None) -> None:
        super().__init__(message, node=node)
        self.reason = reason


class RpcTimeout(RpcError):
    pass


# --- releases -------------------------------------------------------------

class ReleaseError(ErldeployError):
    """A release operation was refused or failed on a node."""


class PreflightError(ReleaseError):
    """Refused before any node changed."""


class AgentError(ReleaseError):
    """The on-node agent could not be loaded or reported a failure."""
