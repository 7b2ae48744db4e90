"""Throwaway certificates (made with the `openssl` command) and TLS distribution nodes.

    pki = Pki.make(tmp_path)          # a CA; node, client, expired and foreign certs
    optfile = pki.optfile(tmp_path / "dist.conf")     # the nodes' ssl_dist_optfile
    ErlNode(epmd, args=tls_args(optfile)).start()

The node certificate names 127.0.0.1, ::1, localhost and this host, as OTP's own
client checks (the host part of the node name against the certificate).
"""

from __future__ import annotations

import shutil
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path

_CA_CONF = """\
[ ca ]
default_ca = ca_default
[ ca_default ]
dir = {dir}
database = {dir}/index.txt
new_certs_dir = {dir}
serial = {dir}/serial
default_md = sha256
policy = policy_any
copy_extensions = copy
unique_subject = no
[ policy_any ]
commonName = supplied
[ ext ]
basicConstraints = CA:FALSE
keyUsage = digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth, clientAuth
subjectAltName = {san}
"""


def _openssl(*args: str, cwd: Path) -> None:
    exe = shutil.which("openssl")
    if exe is None:
        raise RuntimeError("openssl not found on PATH (Debian: apt-get install openssl)")
    p = subprocess.run([exe, *args], cwd=cwd, capture_output=True, text=True)
    if p.returncode != 0:
        raise RuntimeError(f"openssl {' '.join(args[:2])} failed: {p.stderr[-500:]}")


def _san() -> str:
    host = socket.gethostname()
    short = host.split(".")[0]
    names = dict.fromkeys(["localhost", host, short])
    return ", ".join(["IP:127.0.0.1", "IP:::1", *(f"DNS:{n}" for n in names)])


@dataclass(frozen=True)
class Pair:
    cert: Path
    key: Path


@dataclass(frozen=True)
class Pki:
    dir: Path
    ca: Path            # the cluster's CA certificate
    node: Pair          # the nodes' certificate (server and client side)
    client: Pair        # ours, signed by the CA
    expired: Pair       # signed by the CA, validity over years ago
    foreign_ca: Path    # another CA
    foreign: Pair       # signed by the other CA
    elsewhere: Pair     # signed by the CA, naming only another host (elsewhere.example)

    @classmethod
    def make(cls, base: Path) -> Pki:
        d = Path(base) / "pki"
        d.mkdir(parents=True, exist_ok=True)
        san = _san()
        (d / "ca.cnf").write_text(_CA_CONF.format(dir=d, san=san))
        for ca in ("ca", "foreign_ca"):
            _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", f"{ca}.key",
                     "-out", f"{ca}.pem", "-days", "3", "-subj", f"/CN=erldeploy test {ca}",
                     "-addext", "basicConstraints=critical,CA:TRUE",
                     "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=d)

        def issue(name: str, ca: str, start: str | None = None, end: str | None = None,
                  alt: str = san) -> Pair:
            (d / "ca.cnf").write_text(_CA_CONF.format(dir=d, san=alt))
            _openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.csr",
                     "-subj", f"/CN={name}", "-addext", f"subjectAltName={alt}", cwd=d)
            (d / "index.txt").write_text("")
            (d / "serial").write_text(f"{abs(hash((name, str(d)))) % 10**12:x}".rjust(12, "0") + "\n")
            dates = ["-startdate", start, "-enddate", end] if start else ["-days", "3"]
            _openssl("ca", "-batch", "-config", "ca.cnf", "-extensions", "ext", "-notext",
                     "-cert", f"{ca}.pem", "-keyfile", f"{ca}.key", "-in", f"{name}.csr",
                     "-out", f"{name}.pem", *dates, cwd=d)
            return Pair(d / f"{name}.pem", d / f"{name}.key")

        return cls(dir=d, ca=d / "ca.pem", node=issue("node", "ca"), client=issue("client", "ca"),
                   expired=issue("expired", "ca", "20200101000000Z", "20210101000000Z"),
                   foreign_ca=d / "foreign_ca.pem", foreign=issue("foreign", "foreign_ca"),
                   elsewhere=issue("elsewhere", "ca", alt="DNS:elsewhere.example"))

    def optfile(self, path: Path, *, node: Pair | None = None, cacert: Path | None = None,
                versions: str | None = None, client_verify: bool = True) -> Path:
        """An ssl_dist_optfile as an operator writes one: mutual TLS, both sections."""
        node = node or self.node
        cacert = cacert or self.ca
        vers = f", {{versions, ['{versions}']}}" if versions else ""
        common = (f'{{certfile, "{node.cert}"}}, {{keyfile, "{node.key}"}}, '
                  f'{{cacertfile, "{cacert}"}}, {{verify, verify_peer}}{vers}')
        client = common if client_verify else common.replace("verify_peer", "verify_none")
        path.write_text(f"[{{server, [{common}, {{fail_if_no_peer_cert, true}}]}},\n"
                        f" {{client, [{client}]}}].\n")
        return path


def tls_args(optfile: Path, inet6: bool = False) -> list[str]:
    return ["-proto_dist", "inet6_tls" if inet6 else "inet_tls", "-ssl_dist_optfile", str(optfile)]
