"""TLS settings for distribution over TLS (``-proto_dist inet_tls``).

The nodes of such a cluster read an ``ssl_dist_optfile``: one Erlang term,

    [{server, [{certfile, "srv.pem"}, {keyfile, "srv.key"}, {cacertfile, "ca.pem"},
               {verify, verify_peer}, {fail_if_no_peer_cert, true}]},
     {client, [{certfile, "cli.pem"}, {keyfile, "cli.key"}, {cacertfile, "ca.pem"},
               {verify, verify_peer}]}].

We are a client only, so its ``client`` section is what we take (the same file the
nodes use works as is), or the same three paths from ``--tls-*`` options.

What OTP's client does and we do too (inet_tls_dist's setup): the server's
certificate must chain to the CA and match the host part of the node name (it is
sent as the SNI name; an IP host must be in the certificate's IP SANs), and our
certificate is presented for the server's ``verify_peer``. Unlike OTP 25's ssl
default we verify unless the file says ``{verify, verify_none}``.

Pure: building the options reads no key material; :func:`make_context` loads
the files. Key contents and passwords never appear in messages or reprs.
"""

from __future__ import annotations

import os

from ..errors import TermSyntaxError, UsageError
from ..record import Record

TYPE_CHECKING = False  # typing is not imported at run time: see cli/fastpath.py
if TYPE_CHECKING:
    import ssl
    from typing import Any

# client-section options that change nothing for us, or that only an Erlang VM can run
_IGNORED = {"reuse_sessions", "secure_renegotiate", "hibernate_after", "erl_dist", "log_level",
            "ktls", "keep_secrets", "honor_cipher_order", "dhfile", "fail_if_no_peer_cert",
            "reuse_session", "session_tickets", "customize_hostname_check", "crl_cache"}
_VERSIONS = ("tlsv1.2", "tlsv1.3")  # ssl.TLSVersion members, by OTP's names (ssl is loaded late)


class TlsOptions(Record):
    """The client side of TLS distribution, as the user configured it."""

    _fields_ = (
        "certfile", "keyfile", "cacertfile", "password", "verify", "server_name", "versions", "ciphers",
        "source", "notes",
    )
    _defaults = {
        "certfile": None, "keyfile": None, "cacertfile": None, "password": None, "verify": True,
        "server_name": None, "versions": (), "ciphers": None, "source": "options", "notes": (),
    }
    _hidden = ("password",)
    _frozen = True
    certfile: str | None
    keyfile: str | None
    cacertfile: str | None
    password: str | None
    verify: bool
    # None: the node's host (OTP's default SNI); False: {server_name_indication, disable}
    server_name: str | bool | None
    versions: tuple[str, ...]
    ciphers: str | None
    source: str  # the optfile path or "options", for messages
    notes: tuple[str, ...]  # optfile settings we could not honour (warnings)

    def sni_for(self, host: str) -> str | None:
        """The name sent as SNI and checked against the certificate (None: none)."""
        if self.server_name is False:
            return None
        return self.server_name if isinstance(self.server_name, str) else host


def from_optfile(path: str) -> TlsOptions:
    """The ``client`` section of an ``ssl_dist_optfile``; relative paths are taken
    from the file's directory (the nodes take them from their cwd, which an
    operator usually makes the same)."""
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    except OSError as e:
        raise UsageError(f"cannot read ssl_dist_optfile {path}: {(e.strerror or str(e)).lower()}") from None
    return parse_optfile(text, path)


def parse_optfile(text: str, source: str = "ssl_dist_optfile") -> TlsOptions:
    from ..term import parse_term

    try:
        term = parse_term(text.strip())
    except TermSyntaxError as e:
        raise UsageError(f"{source}: not an Erlang term ({e})") from None
    if not isinstance(term, list) or not all(isinstance(t, tuple) and len(t) == 2 for t in term):
        raise UsageError(f"{source}: expected [{{server, [...]}}, {{client, [...]}}]")
    sections = {str(k): v for k, v in term}
    client = sections.get("client")
    if client is None:
        raise UsageError(f"{source}: no client section (erldeploy connects as a TLS client)")
    if not isinstance(client, list):
        raise UsageError(f"{source}: the client section is not a list of options")
    base = os.path.dirname(os.path.abspath(source)) if os.path.exists(source) else ""
    return _client_options(client, source, base)


def _client_options(opts: list, source: str, base: str) -> TlsOptions:
    kw: dict[str, Any] = {"source": source}
    notes: list[str] = []

    def path_of(key: str, value: Any) -> str:
        if not isinstance(value, str):
            raise UsageError(f"{source}: {key} must be a string path")
        return os.path.join(base, value) if base and not os.path.isabs(value) else value

    for opt in opts:
        if not (isinstance(opt, tuple) and len(opt) == 2):
            notes.append(f"option {str(opt)[:40]} ignored (not a {{Key, Value}} pair)")
            continue
        key, value = str(opt[0]), opt[1]
        if key in ("certfile", "keyfile", "cacertfile"):
            kw[key] = path_of(key, value)
        elif key == "password":
            kw["password"] = value if isinstance(value, str) else None
        elif key == "verify":
            if str(value) not in ("verify_peer", "verify_none"):
                raise UsageError(f"{source}: verify must be verify_peer or verify_none")
            kw["verify"] = str(value) == "verify_peer"
        elif key == "server_name_indication":
            kw["server_name"] = False if value == "disable" else str(value)
        elif key == "versions":
            names = [str(v) for v in (value if isinstance(value, list) else [value])]
            unknown = [n for n in names if n not in _VERSIONS]
            if unknown:
                raise UsageError(f"{source}: TLS version(s) {', '.join(unknown)} not supported (tlsv1.2, tlsv1.3)")
            kw["versions"] = tuple(names)
        elif key == "ciphers":
            if isinstance(value, list) and all(isinstance(c, str) for c in value):
                kw["ciphers"] = ":".join(value)
            else:
                notes.append("ciphers given as cipher suite maps ignored (give OpenSSL names)")
        elif key == "depth":
            notes.append("depth ignored (OpenSSL's default chain depth applies)")
        elif key == "verify_fun":
            notes.append("verify_fun ignored (an Erlang fun); the certificate is verified against the CA")
        elif key in ("cert", "key", "cacerts", "crl_check"):
            raise UsageError(f"{source}: client option {key} is not supported; use certfile/keyfile/cacertfile")
        elif key not in _IGNORED:
            notes.append(f"client option {key} ignored")
    return TlsOptions(**kw, notes=tuple(notes))


def merge(base: TlsOptions | None, certfile: str | None = None, keyfile: str | None = None,
          cacertfile: str | None = None) -> TlsOptions | None:
    """``--tls-*`` paths over an optfile's client section (either may be absent)."""
    given = {k: os.path.expanduser(v) for k, v in
             (("certfile", certfile), ("keyfile", keyfile), ("cacertfile", cacertfile)) if v}
    if base is None:
        return TlsOptions(**given) if given else None
    return base.replace(**given) if given else base


def make_context(opts: TlsOptions) -> ssl.SSLContext:
    """An ``ssl.SSLContext`` for the client side; UsageError (exit 2) for unusable files."""
    import ssl  # only here: the plain-TCP CLI path never pays for it

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if opts.versions:
        ctx.minimum_version = min(_tls_version(v) for v in opts.versions)
        ctx.maximum_version = max(_tls_version(v) for v in opts.versions)
    else:
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2  # what OTP offers by default
    if opts.ciphers:
        try:
            ctx.set_ciphers(opts.ciphers)
        except ssl.SSLError:
            raise UsageError(f"{opts.source}: no usable cipher in {opts.ciphers!r}") from None
    if opts.verify:
        if not opts.cacertfile:
            raise UsageError(f"TLS ({opts.source}): no cacertfile to verify the nodes' certificates "
                             "(give --tls-cacertfile, or {verify, verify_none} in the optfile)")
        _load(opts, "cacertfile", lambda: ctx.load_verify_locations(cafile=opts.cacertfile))
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.check_hostname = opts.server_name is not False
    else:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    if opts.certfile:
        _load(opts, "certfile", lambda: ctx.load_cert_chain(opts.certfile, opts.keyfile or None,
                                                            password=opts.password))
    elif opts.keyfile:
        raise UsageError(f"TLS ({opts.source}): a keyfile without a certfile")
    return ctx


def _load(opts: TlsOptions, what: str, fn) -> None:
    import ssl

    path = getattr(opts, what)
    try:
        fn()
    except FileNotFoundError:
        raise UsageError(f"TLS {what} {path}: no such file") from None
    except PermissionError:
        raise UsageError(f"TLS {what} {path}: permission denied") from None
    except (ssl.SSLError, OSError) as e:
        # never the file's content: only which file and OpenSSL's reason code
        reason = getattr(e, "reason", None) or type(e).__name__
        if what == "certfile":
            detail = f"{path} / keyfile {opts.keyfile or '(in certfile)'}"
        else:
            detail = path
        raise UsageError(f"TLS {what} {detail}: not usable ({str(reason).lower().replace('_', ' ')})") from None


def _tls_version(name: str):
    import ssl

    return {"tlsv1.2": ssl.TLSVersion.TLSv1_2, "tlsv1.3": ssl.TLSVersion.TLSv1_3}[name]
