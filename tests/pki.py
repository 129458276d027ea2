"""A throw-away PKI for TLS tests, made with ``cryptography``.

``Pki(directory)`` writes a station CA, a server certificate for 127.0.0.1
and localhost signed by it, and a second CA nobody trusts; ``client(cn)``
issues a station certificate (subject CN = the station id) from either.
EC P-256 keys: generating them takes milliseconds.
"""

from __future__ import annotations

import ipaddress
import ssl
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey


def _name(cn: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "CSMS tests"),
            x509.NameAttribute(NameOID.COMMON_NAME, cn),
        ]
    )


def _write(path: Path, cert: x509.Certificate, key: PrivateKey) -> tuple[Path, Path]:
    cert_path, key_path = path.with_suffix(".crt"), path.with_suffix(".key")
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


class _Authority:
    def __init__(self, directory: Path, name: str) -> None:
        self.directory = directory
        self.key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.now(UTC)
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(_name(name))
            .issuer_name(_name(name))
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=5))
            .not_valid_after(now + timedelta(days=2))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .sign(self.key, hashes.SHA256())
        )
        self.cert_path, self.key_path = _write(directory / name, self.cert, self.key)

    def issue(
        self,
        file_name: str,
        cn: str,
        *,
        server: bool = False,
        key: PrivateKey | None = None,
        expired: bool = False,
    ) -> tuple[Path, Path]:
        key = key or ec.generate_private_key(ec.SECP256R1())
        now = datetime.now(UTC)
        start = now - timedelta(days=3) if expired else now - timedelta(minutes=5)
        end = now - timedelta(days=1) if expired else now + timedelta(days=1)
        usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name(cn))
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(end)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        )
        if server:
            builder = builder.add_extension(
                x509.SubjectAlternativeName(
                    [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
                ),
                critical=False,
            )
        cert = builder.sign(self.key, hashes.SHA256())
        return _write(self.directory / file_name, cert, key)


class Pki:
    """A CA the CSMS trusts for station certificates (and that signs the
    server's), and another one it does not trust."""

    def __init__(self, directory: Path, *, rsa_server: bool = False) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.directory = directory
        self.ca = _Authority(directory, "station-ca")
        self.untrusted_ca = _Authority(directory, "untrusted-ca")
        server_key: PrivateKey | None = (
            rsa.generate_private_key(public_exponent=65537, key_size=2048) if rsa_server else None
        )
        self.server_cert, self.server_key = self.ca.issue(
            "server", "localhost", server=True, key=server_key
        )

    @property
    def ca_file(self) -> Path:
        return self.ca.cert_path

    def client(
        self, cn: str, *, untrusted: bool = False, expired: bool = False
    ) -> tuple[Path, Path]:
        """(certificate, key) files of a station certificate with subject CN ``cn``."""
        authority = self.untrusted_ca if untrusted else self.ca
        kind = "untrusted" if untrusted else "expired" if expired else "client"
        return authority.issue(f"{kind}-{cn.replace('/', '_')}", cn, expired=expired)

    def client_context(
        self,
        cn: str | None = None,
        *,
        untrusted: bool = False,
        expired: bool = False,
        maximum_version: ssl.TLSVersion | None = None,
        minimum_version: ssl.TLSVersion | None = None,
        ciphers: str | None = None,
    ) -> ssl.SSLContext:
        """A station's TLS context: trusts the server, shows a certificate for ``cn``."""
        context = ssl.create_default_context(cafile=str(self.ca_file))
        if cn is not None:
            cert, key = self.client(cn, untrusted=untrusted, expired=expired)
            context.load_cert_chain(cert, key)
        if minimum_version is not None:
            context.minimum_version = minimum_version
        if maximum_version is not None:
            context.maximum_version = maximum_version
        if ciphers is not None:
            context.set_ciphers(ciphers)
        return context
