"""How the relay's AMQP link reads CSMS_AMQP_URL (csms.adapters.amqp.confirm_link.Address)."""

from __future__ import annotations

import ssl

import pytest

from csms.adapters.amqp.confirm_link import Address


class TestAddress:
    def test_the_default_vhost_port_and_heartbeat(self) -> None:
        """amqp://host/ means port 5672, vhost "/", a 60 s heartbeat, no TLS."""
        address = Address.from_url("amqp://guest:guest@127.0.0.1/")
        assert (address.host, address.port, address.vhost) == ("127.0.0.1", 5672, "/")
        assert (address.heartbeat, address.tls) == (60, None)

    def test_credentials_and_vhost_are_percent_decoded(self) -> None:
        """A password with reserved characters and a named vhost arrive as meant."""
        address = Address.from_url("amqp://csms:p%40ss%2Fword@mq.internal:5673/billing%2Fprod")
        assert (address.user, address.password) == ("csms", "p@ss/word")
        assert (address.port, address.vhost) == (5673, "billing/prod")

    def test_the_encoded_root_vhost_is_the_root_vhost(self) -> None:
        """%2F, as the README's production example writes it, is vhost "/"."""
        assert Address.from_url("amqp://u:p@mq:5672/%2F").vhost == "/"

    def test_amqps_verifies_the_broker_on_port_5671(self) -> None:
        """TLS checks the broker's certificate and name unless told not to."""
        address = Address.from_url("amqps://u:p@mq.internal/")
        assert address.port == 5671
        assert address.tls is not None
        assert address.tls.verify_mode == ssl.CERT_REQUIRED
        assert address.tls.check_hostname

    def test_no_verify_ssl_turns_the_check_off(self) -> None:
        """aiormq's query option keeps its meaning for an existing URL."""
        tls = Address.from_url("amqps://u:p@mq/?no_verify_ssl=1").tls
        assert tls is not None
        assert tls.verify_mode == ssl.CERT_NONE

    def test_the_heartbeat_query_option(self) -> None:
        """?heartbeat=N sets the interval the link asks for; 0 turns heartbeats off."""
        assert Address.from_url("amqp://u:p@mq/?heartbeat=5").heartbeat == 5
        assert Address.from_url("amqp://u:p@mq/?heartbeat=0").heartbeat == 0

    @pytest.mark.parametrize("url", ["http://mq/", "amqp:///vhost", "amqp://u:p@mq/?heartbeat=x"])
    def test_an_unusable_url_is_refused(self, url: str) -> None:
        """The relay reports it as a broker it cannot connect to."""
        with pytest.raises(ValueError, match=r"."):
            Address.from_url(url)
