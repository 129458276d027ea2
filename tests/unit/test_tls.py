"""What a handshake proves: certificate CNs and proxy headers."""

from __future__ import annotations

import ipaddress

import pytest
from websockets.datastructures import Headers

from csms.transport.tls import PeerFacts, certificate_cn, subject_cn


class TestSubjectCn:
    @pytest.mark.parametrize(
        ("value", "cn"),
        [
            ("CN=CP-1,O=Acme,C=DE", "CP-1"),  # RFC 4514 (nginx $ssl_client_s_dn, AWS ALB)
            ("C=DE, O=Acme, CN=CP-1", "CP-1"),
            ("/C=DE/O=Acme/CN=CP-1", "CP-1"),  # OpenSSL one-line (HAProxy, old nginx)
            ('By=spiffe://x;Hash=ab12;Subject="CN=CP-1,O=Acme";URI=', "CP-1"),  # Envoy XFCC
            ("CN=CP\\,1,O=Acme", "CP,1"),  # an escaped comma
            ("CP-1", "CP-1"),  # a bare CN
            ("O=Acme", None),
            ("CN=a,CN=b", None),  # ambiguous
            ("", None),
        ],
    )
    def test_formats_proxies_use(self, value: str, cn: str | None) -> None:
        """The CN is found in the DN formats of common proxies; none or two: None."""
        assert subject_cn(value) == cn

    def test_certificate_cn_of_getpeercert(self) -> None:
        """ssl's decoded certificate: the one commonName of the subject."""
        cert = {"subject": ((("organizationName", "Acme"),), (("commonName", "CP-9"),))}
        assert certificate_cn(cert) == "CP-9"
        assert certificate_cn({}) is None
        assert certificate_cn(None) is None


class TestPeerFacts:
    def headers(self, **values: str) -> Headers:
        return Headers({k.replace("_", "-"): v for k, v in values.items()})

    def test_plain_connection_without_trusted_proxies_is_not_tls(self) -> None:
        """Headers claim nothing by default."""
        facts = PeerFacts()
        headers = self.headers(X_Forwarded_Proto="https", X_Cert="CN=CP-1")
        assert facts.read("127.0.0.1", None, headers) == (False, None)

    def test_trusted_proxy_header_is_read(self) -> None:
        """From a trusted address, X-Forwarded-Proto and the configured header count."""
        facts = PeerFacts((ipaddress.ip_network("10.0.0.0/8"),), "X-Cert")
        headers = self.headers(X_Forwarded_Proto="https", X_Cert="CN=CP-1")
        assert facts.read("10.1.2.3", None, headers) == (True, "CP-1")
        assert facts.read("192.168.0.1", None, headers) == (False, None)
        assert facts.read("10.1.2.3", None, self.headers(X_Cert="CN=CP-1")) == (False, None)
