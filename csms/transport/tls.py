"""TLS for security profiles 2 and 3, and what a handshake proves about its peer.

``server_context`` builds the listener's context: TLS 1.2 or newer, the
cipher suites the OCPP security specifications list, client certificates
requested (and verified against ``CSMS_TLS_CLIENT_CA``) when that is set.
A certificate that does not verify ends the TLS handshake with an alert:
there is no HTTP exchange in which to answer 401. Such failures are still
counted (``csms_handshakes_rejected_total{reason="tls_..."}``) by the
SSLObject subclass the context hands to asyncio.

``PeerFacts`` tells the station server whether a connection came over TLS
and which station a verified client certificate names, directly or, behind
a TLS-terminating proxy listed in ``CSMS_TRUSTED_PROXIES``, from the
proxy's headers (docs/security.md).
"""

from __future__ import annotations

import ipaddress
import re
import ssl
from dataclasses import dataclass

import structlog
from websockets.datastructures import Headers

from csms.core.errors import ConfigurationError
from csms.core.settings import Settings
from csms.telemetry import metrics

log = structlog.get_logger("csms.tls")

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class _CountingSSLObject(ssl.SSLObject):
    """Counts and logs TLS handshakes that fail (asyncio logs them only in debug mode)."""

    def do_handshake(self) -> None:
        try:
            super().do_handshake()
        except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
            raise  # the handshake is under way
        except ssl.SSLCertVerificationError as exc:
            _refused("tls_untrusted_certificate", exc.verify_message or exc.reason)
            raise
        except ssl.SSLError as exc:
            _refused("tls_handshake_failed", exc.reason)
            raise


def _refused(reason: str, detail: str | None) -> None:
    metrics.HANDSHAKES_REJECTED.labels(reason).inc()
    log.info("handshake_refused", reason=reason, detail=detail)


def server_context(settings: Settings) -> ssl.SSLContext | None:
    """The listener's TLS context, or None without CSMS_TLS_CERT (plain ws://)."""
    if not settings.tls_cert:
        return None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.options |= ssl.OP_CIPHER_SERVER_PREFERENCE | ssl.OP_NO_COMPRESSION
    context.sslobject_class = _CountingSSLObject
    try:
        context.set_ciphers(settings.tls_ciphers)
    except ssl.SSLError:
        raise ConfigurationError(
            f"CSMS_TLS_CIPHERS={settings.tls_ciphers!r}: OpenSSL knows none of these suites"
        ) from None
    try:
        context.load_cert_chain(settings.tls_cert, settings.tls_key)
        if settings.tls_client_ca:
            context.load_verify_locations(settings.tls_client_ca)
            # Optional: profile 1 and 2 stations show no certificate. Profile 3
            # stations are refused at the HTTP step if they show none.
            context.verify_mode = ssl.CERT_OPTIONAL
    except (OSError, ssl.SSLError) as exc:
        raise ConfigurationError(f"cannot load the TLS certificate, key or CA: {exc}") from None
    return context


@dataclass(frozen=True, slots=True)
class PeerFacts:
    """How to read a connection's transport security. ``proxies`` are trusted
    to have terminated TLS; ``client_cert_header`` is where they put the
    verified client certificate's subject (empty: they do not)."""

    proxies: tuple[Network, ...] = ()
    client_cert_header: str = ""

    @classmethod
    def from_settings(cls, settings: Settings) -> PeerFacts:
        return cls(settings.trusted_proxy_networks(), settings.proxy_client_cert_header)

    def read(
        self, remote_ip: str | None, ssl_object: ssl.SSLObject | None, headers: Headers
    ) -> tuple[bool, str | None]:
        """(came over TLS, CN of a verified client certificate or None)."""
        if ssl_object is not None:
            return True, certificate_cn(ssl_object.getpeercert())
        if not self._trusted(remote_ip):
            return False, None
        proto = headers.get("X-Forwarded-Proto", "").strip().lower()
        over_tls = proto in ("https", "wss")
        if not over_tls or not self.client_cert_header:
            return over_tls, None
        value = headers.get(self.client_cert_header, "").strip()
        return True, subject_cn(value) if value else None

    def _trusted(self, remote_ip: str | None) -> bool:
        if not self.proxies or remote_ip is None:
            return False
        try:
            address = ipaddress.ip_address(remote_ip)
        except ValueError:
            return False
        return any(address in network for network in self.proxies)


def certificate_cn(cert: object) -> str | None:
    """The subject commonName of ``SSLObject.getpeercert()``; None without a
    certificate or with more than one CN (ambiguous)."""
    if not isinstance(cert, dict):
        return None
    names = [value for rdn in cert.get("subject", ()) for key, value in rdn if key == "commonName"]
    return names[0] if len(names) == 1 else None


_XFCC_SUBJECT = re.compile(r'(?:^|;)\s*Subject="((?:[^"\\]|\\.)*)"', re.IGNORECASE)
_RDN_SPLIT = re.compile(r"(?<!\\),")


def subject_cn(value: str) -> str | None:
    """The CN in a proxy's client-certificate header: an RFC 4514 DN
    (``CN=CP-1,O=Acme``: nginx ``$ssl_client_s_dn``, AWS ALB), an OpenSSL
    one-line DN (``/O=Acme/CN=CP-1``: HAProxy, old nginx), an Envoy
    ``x-forwarded-client-cert`` (``...;Subject="CN=CP-1,O=Acme";...``) or a
    bare CN. None when there is no CN or more than one."""
    match = _XFCC_SUBJECT.search(value)
    if match is not None:
        value = match.group(1).replace('\\"', '"')
    if value.startswith("/"):
        parts = value[1:].split("/")
    elif "=" in value:
        parts = _RDN_SPLIT.split(value)
    else:
        return value or None
    names = []
    for part in parts:
        key, sep, text = part.partition("=")
        if sep and key.strip().upper() == "CN":
            names.append(re.sub(r"\\(.)", r"\1", text.strip()))
    return names[0] if len(names) == 1 else None
