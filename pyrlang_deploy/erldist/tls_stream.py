"""TLS over an asyncio TCP transport, with memory BIOs: our own small TLS transport.

Why not ``loop.create_connection(ssl=...)``: a lone RPC waits for its reply by
reading the socket right where it awaits (Connection.wait_inline), which saves two
event-loop passes per call. With asyncio's TLS transport those bytes are
ciphertext nobody can hand back; here the same decryption entry point
(:meth:`TlsStream.feed`, exposed as ``get_extra_info("tls_feed")``) serves both the
event loop and the inline reader, so TLS calls keep that fast path.

The application protocol (the distribution protocol) sees an ordinary transport:
``connection_made`` once the TLS handshake is done, plaintext in
``data_received``, ``write`` encrypts, flow control passes straight through.
"""

from __future__ import annotations

import asyncio
import ssl
from typing import Any

_READ = 1 << 18


class TlsStream(asyncio.Protocol):
    """The TCP side: ciphertext in and out, the TLS handshake, then plaintext to ``app``."""

    def __init__(self, ctx: ssl.SSLContext, server_hostname: str | None, app: asyncio.Protocol,
                 loop: asyncio.AbstractEventLoop) -> None:
        self._in = ssl.MemoryBIO()
        self._out = ssl.MemoryBIO()
        self._obj = ctx.wrap_bio(self._in, self._out, server_side=False, server_hostname=server_hostname)
        self.app = app
        self.ready: asyncio.Future[None] = loop.create_future()  # the TLS handshake finished
        self.raw: asyncio.Transport | None = None
        self.transport: TlsTransport | None = None
        self._error: BaseException | None = None
        self._up = False  # the app has had connection_made

    # --- TCP side ----------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.raw = transport  # type: ignore[assignment]
        self._handshake()

    def data_received(self, data: bytes) -> None:
        self.feed(data)

    def feed(self, data: bytes) -> None:
        """Ciphertext from the socket (the loop's read or wait_inline's): decrypt, deliver."""
        self._in.write(data)
        if not self.ready.done():
            self._handshake()
            if not self.ready.done() or self._error is not None:
                return
        pieces = []
        obj = self._obj
        while True:
            try:
                chunk = obj.read(_READ)
            except ssl.SSLWantReadError:
                break
            except ssl.SSLZeroReturnError:
                break  # close_notify: the TCP close follows
            except ssl.SSLError as exc:
                self._error = exc  # an alert: connection_lost reports it
                self._flush()
                self.raw.abort()
                return
            if not chunk:
                break
            pieces.append(chunk)
            if not self._in.pending and not obj.pending():
                break  # all read: spare the SSLWantReadError a further read would raise
        if self._out.pending:
            self._flush()  # post-handshake replies (key updates)
        if pieces:
            self.app.data_received(pieces[0] if len(pieces) == 1 else b"".join(pieces))

    def _handshake(self) -> None:
        try:
            self._obj.do_handshake()
        except ssl.SSLWantReadError:
            self._flush()
            return
        except ssl.SSLError as exc:
            self._flush()
            self._error = exc
            if not self.ready.done():
                self.ready.set_exception(exc)
            self.raw.close()
            return
        self._flush()
        self.transport = TlsTransport(self)
        self._up = True
        self.app.connection_made(self.transport)
        if not self.ready.done():
            self.ready.set_result(None)

    def _flush(self) -> None:
        if self._out.pending and self.raw is not None and not self.raw.is_closing():
            self.raw.write(self._out.read())

    def write(self, data: Any) -> None:
        self._obj.write(data)
        self.raw.write(self._out.read())

    def eof_received(self) -> bool:
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        exc = self._error or exc
        if self._up:
            self.app.connection_lost(exc)
        elif not self.ready.done():
            self.ready.set_exception(exc or ConnectionResetError("closed during the TLS handshake"))

    def pause_writing(self) -> None:
        if self._up:
            self.app.pause_writing()

    def resume_writing(self) -> None:
        if self._up:
            self.app.resume_writing()


class TlsTransport(asyncio.Transport):
    """What the application protocol writes to: plaintext in, ciphertext to the socket."""

    def __init__(self, stream: TlsStream) -> None:
        super().__init__()
        self._stream = stream

    def write(self, data: Any) -> None:
        self._stream.write(data)

    def writelines(self, list_of_data: Any) -> None:
        self._stream.write(b"".join(list_of_data))

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        s = self._stream
        if name == "tls_feed":
            return s.feed
        if name == "ssl_object":
            return s._obj
        if name == "peercert":
            return s._obj.getpeercert()
        if name == "cipher":
            return s._obj.cipher()
        return s.raw.get_extra_info(name, default)

    def is_closing(self) -> bool:
        return self._stream.raw.is_closing()

    def close(self) -> None:
        self._stream.raw.close()

    def abort(self) -> None:
        self._stream.raw.abort()

    def can_write_eof(self) -> bool:
        return False

    def get_write_buffer_size(self) -> int:
        return self._stream.raw.get_write_buffer_size()

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        self._stream.raw.set_write_buffer_limits(high, low)

    def pause_reading(self) -> None:
        self._stream.raw.pause_reading()

    def resume_reading(self) -> None:
        self._stream.raw.resume_reading()

    def is_reading(self) -> bool:
        return self._stream.raw.is_reading()
