"""Configuration from the environment and flags, and its errors."""

from __future__ import annotations

import os
import platform
import re

import pytest

from csms.core.errors import ConfigurationError
from csms.core.settings import Settings


class TestSettings:
    def test_defaults_match_the_contract(self) -> None:
        """With nothing set the CSMS runs on SQLite, no broker, ports 9000/8080."""
        s = Settings.load(env={})
        assert (s.host, s.port, s.http_port) == ("0.0.0.0", 9000, 8080)
        assert s.database_url == "sqlite:///csms.db"
        assert s.amqp_url == ""
        assert s.amqp_exchange == "csms.events"
        assert s.unknown_stations == "reject"
        assert (s.heartbeat_interval, s.call_timeout, s.log_level) == (300, 30.0, "info")
        assert s.shutdown_seconds == 10.0  # the contract's "exit 0 within 10 s"

    def test_flags_win_over_environment(self) -> None:
        """--http-port beats CSMS_HTTP_PORT."""
        s = Settings.load(
            env={"CSMS_HTTP_PORT": "81", "CSMS_PORT": "90"},
            overrides={"http_port": 82, "port": None},
        )
        assert (s.http_port, s.port) == (82, 90)

    @pytest.mark.parametrize(
        ("env", "names"),
        [
            ({"CSMS_PORT": "nine"}, "CSMS_PORT"),
            ({"CSMS_PORT": "70000"}, "CSMS_PORT"),
            ({"CSMS_UNKNOWN_STATIONS": "maybe"}, "CSMS_UNKNOWN_STATIONS"),
            ({"CSMS_AMQP_URL": "http://x"}, "CSMS_AMQP_URL"),
            ({"CSMS_LOG_LEVEL": "loud"}, "CSMS_LOG_LEVEL"),
            ({"CSMS_HEARTBEAT_INTERVAL": "0"}, "CSMS_HEARTBEAT_INTERVAL"),
            ({"CSMS_SHUTDOWN_SECONDS": "0"}, "CSMS_SHUTDOWN_SECONDS"),
            ({"CSMS_SHUTDOWN_SECONDS": "-5"}, "CSMS_SHUTDOWN_SECONDS"),
            ({"CSMS_SHUTDOWN_SECONDS": "inf"}, "CSMS_SHUTDOWN_SECONDS"),
            ({"CSMS_SHUTDOWN_SECONDS": "ten"}, "CSMS_SHUTDOWN_SECONDS"),
        ],
    )
    def test_bad_values_name_the_setting(self, env: dict[str, str], names: str) -> None:
        """A bad value raises one clear message naming the variable."""
        with pytest.raises(ConfigurationError, match=names):
            Settings.load(env=env)


class TestNodeId:
    def test_default_is_host_name_and_process_id(self) -> None:
        """The contract's default: host name and process id (safe characters only)."""
        node = Settings.load(env={}).node
        assert node.endswith(f"-{os.getpid()}")
        assert re.fullmatch(r"[A-Za-z0-9._-]{1,64}", node)
        host = platform.node()
        if re.fullmatch(r"[A-Za-z0-9._-]{1,50}", host):
            assert node == f"{host}-{os.getpid()}"

    def test_a_given_node_id_names_the_process(self) -> None:
        assert Settings.load(env={"CSMS_NODE_ID": "csms-eu-1.a_2"}).node == "csms-eu-1.a_2"

    @pytest.mark.parametrize("bad", ["has space", "slash/ed", "x" * 65, "ünï"])
    def test_an_unsafe_node_id_is_refused(self, bad: str) -> None:
        """It names a queue and a routing key: 1-64 of letters, digits, . _ -."""
        with pytest.raises(ConfigurationError, match="CSMS_NODE_ID"):
            Settings.load(env={"CSMS_NODE_ID": bad})

    def test_sixty_four_characters_are_enough(self) -> None:
        assert Settings.load(env={"CSMS_NODE_ID": "n" * 64}).node == "n" * 64
