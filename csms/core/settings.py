"""Settings: environment variables, overridden by ``csms serve`` flags.

Every setting ``CSMS_X_Y`` has the flag ``--x-y``; flags win.
"""

from __future__ import annotations

import ipaddress
import math
import os
import platform
import re
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any
from urllib.parse import urlsplit

from csms.core.errors import ConfigurationError

LOG_LEVELS = ("debug", "info", "warning", "error", "critical")
SUBPROTOCOLS = ("ocpp1.6", "ocpp2.0.1")
# TLS 1.2 suites the OCPP security specifications list (1.6 security
# whitepaper, 2.0.1 A00.FR.318-319), forward-secret ones first. TLS 1.3 uses
# OpenSSL's defaults (all AEAD).
TLS12_CIPHERS = ":".join(
    (
        "ECDHE-ECDSA-AES128-GCM-SHA256",
        "ECDHE-ECDSA-AES256-GCM-SHA384",
        "ECDHE-RSA-AES128-GCM-SHA256",
        "ECDHE-RSA-AES256-GCM-SHA384",
        "AES128-GCM-SHA256",  # TLS_RSA_WITH_AES_128_GCM_SHA256
        "AES256-GCM-SHA384",  # TLS_RSA_WITH_AES_256_GCM_SHA384
    )
)
# A node id names a queue and a routing key: keep it to safe characters.
_NODE_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
_NODE_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")
_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off", "")


@dataclass(frozen=True, slots=True)
class Settings:
    host: str = "0.0.0.0"
    port: int = 9000
    http_port: int = 8080
    database_url: str = "sqlite:///csms.db"
    amqp_url: str = ""
    amqp_exchange: str = "csms.events"
    amqp_command_queue: str = "csms.commands"
    node_id: str = ""  # empty: host name and process id (see ``node``)
    relay: str = "inline"  # or "external": `csms relay` processes publish (beyond the contract)
    unknown_stations: str = "reject"
    heartbeat_interval: int = 300
    call_timeout: float = 30.0
    log_level: str = "info"
    # Beyond the contract (documented in README "Configuration").
    ws_ping_interval: float = 60.0
    ws_ping_timeout: float = 60.0
    max_frame_bytes: int = 65536
    outbox_retention_hours: float = 72.0
    database_outage_wait: float = 15.0
    # Seconds after a reboot or a connector's Available before a silent session
    # is closed as abandoned (docs/billing.md).
    abandon_after: float = 900.0
    # SIGTERM to exit: stations closed in waves, then the flushes (app.ShutdownPlan).
    shutdown_seconds: float = 10.0
    tls_cert: str = ""
    tls_key: str = ""
    tls_client_ca: str = ""
    api_token: str = ""
    # Security and admission control (docs/security.md).
    tls_ciphers: str = TLS12_CIPHERS
    trusted_proxies: str = ""
    proxy_client_cert_header: str = ""
    handshake_timeout: float = 10.0
    max_concurrent_handshakes: int = 128
    handshake_rate: float = 1000.0
    handshake_retry_after: int = 10
    handshake_queue_wait: float = 5.0
    max_queued_handshakes: int = 16384
    station_message_rate: float = 20.0
    station_message_burst: int = 200
    station_abuse_seconds: float = 300.0
    station_max_refusals: int = 30
    log_mask_tokens: bool = False
    # Real-world firmware tolerances (docs/interoperability.md).
    default_subprotocol: str = ""
    interop_profiles: str = ""

    @property
    def node(self) -> str:
        """This process's name in a cluster: CSMS_NODE_ID, else host name and pid."""
        if self.node_id:
            return self.node_id
        host = _NODE_UNSAFE.sub("-", platform.node())[:50] or "csms"
        return f"{host}-{os.getpid()}"

    @classmethod
    def load(
        cls, env: Mapping[str, str] | None = None, overrides: Mapping[str, Any] | None = None
    ) -> Settings:
        """Read ``CSMS_*`` from ``env`` (default: os.environ), then apply
        ``overrides`` (flag values; None means "not given")."""
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        for f in fields(cls):
            raw: Any = env.get(env_name(f.name))
            if overrides is not None and overrides.get(f.name) is not None:
                raw = overrides[f.name]
            if raw is None:
                continue
            values[f.name] = _coerce(f.name, f.type, raw)
        settings = cls(**values)
        settings.validate()
        return settings

    def validate(self) -> None:
        for name in ("port", "http_port"):
            port = getattr(self, name)
            if not 0 <= port <= 65535:
                raise ConfigurationError(f"{env_name(name)}={port}: not a TCP port (0-65535)")
        if self.unknown_stations not in ("accept", "reject"):
            raise ConfigurationError(
                f"CSMS_UNKNOWN_STATIONS={self.unknown_stations!r}: must be 'accept' or 'reject'"
            )
        if self.heartbeat_interval <= 0:
            raise ConfigurationError("CSMS_HEARTBEAT_INTERVAL must be a positive number of seconds")
        if not 0 <= self.database_outage_wait <= 60:
            raise ConfigurationError(
                "CSMS_DATABASE_OUTAGE_WAIT must be 0-60 seconds (0: fail at once)"
            )
        if self.call_timeout <= 0:
            raise ConfigurationError("CSMS_CALL_TIMEOUT must be a positive number of seconds")
        if not (math.isfinite(self.abandon_after) and self.abandon_after > 0):
            raise ConfigurationError("CSMS_ABANDON_AFTER must be a positive number of seconds")
        if not (math.isfinite(self.shutdown_seconds) and self.shutdown_seconds > 0):
            raise ConfigurationError(
                f"CSMS_SHUTDOWN_SECONDS={self.shutdown_seconds!r}: must be a positive number"
                " of seconds (the whole shutdown, station waves and flushes)"
            )
        if self.log_level.lower() not in LOG_LEVELS:
            raise ConfigurationError(
                f"CSMS_LOG_LEVEL={self.log_level!r}: must be one of {', '.join(LOG_LEVELS)}"
            )
        if self.amqp_url:
            parts = urlsplit(self.amqp_url)
            if parts.scheme not in ("amqp", "amqps") or not parts.hostname:
                raise ConfigurationError(
                    "CSMS_AMQP_URL must look like amqp://user:password@host:5672/vhost"
                )
        if self.node_id and not _NODE_ID.fullmatch(self.node_id):
            raise ConfigurationError(
                f"CSMS_NODE_ID={self.node_id!r}: 1-64 letters, digits, '.', '_' or '-'"
            )
        if not self.amqp_exchange:
            raise ConfigurationError("CSMS_AMQP_EXCHANGE must not be empty")
        if not self.amqp_command_queue:
            raise ConfigurationError("CSMS_AMQP_COMMAND_QUEUE must not be empty")
        if self.relay not in ("inline", "external"):
            raise ConfigurationError(
                f"CSMS_RELAY={self.relay!r}: must be 'inline' (this process publishes the"
                " outbox) or 'external' (`csms relay` processes do)"
            )
        if bool(self.tls_cert) != bool(self.tls_key):
            raise ConfigurationError("CSMS_TLS_CERT and CSMS_TLS_KEY must be set together")
        if self.tls_client_ca and not self.tls_cert:
            raise ConfigurationError("CSMS_TLS_CLIENT_CA needs CSMS_TLS_CERT and CSMS_TLS_KEY")
        if self.max_frame_bytes < 1024:
            raise ConfigurationError("CSMS_MAX_FRAME_BYTES must be at least 1024")
        self._validate_admission()
        if self.default_subprotocol and self.default_subprotocol not in SUBPROTOCOLS:
            raise ConfigurationError(
                f"CSMS_DEFAULT_SUBPROTOCOL={self.default_subprotocol!r}: must be empty or one of "
                + ", ".join(SUBPROTOCOLS)
            )
        if not self.tls_ciphers:
            raise ConfigurationError("CSMS_TLS_CIPHERS must not be empty")
        self.trusted_proxy_networks()  # raises on a bad CIDR

    def _validate_admission(self) -> None:
        positive = ("handshake_timeout", "max_concurrent_handshakes", "handshake_retry_after")
        for name in positive:
            if getattr(self, name) <= 0:
                raise ConfigurationError(f"{env_name(name)} must be positive")
        for name in ("handshake_rate", "station_message_rate"):
            if getattr(self, name) < 0:
                raise ConfigurationError(f"{env_name(name)} must be 0 (no limit) or positive")
        for name in ("handshake_queue_wait", "max_queued_handshakes"):
            if getattr(self, name) < 0:
                raise ConfigurationError(f"{env_name(name)} must not be negative")
        if self.station_message_burst < 1:
            raise ConfigurationError("CSMS_STATION_MESSAGE_BURST must be at least 1")
        if self.station_max_refusals < 0:
            raise ConfigurationError(
                "CSMS_STATION_MAX_REFUSALS must be 0 (off) or a positive number of messages"
            )
        if self.station_abuse_seconds <= 0:
            raise ConfigurationError("CSMS_STATION_ABUSE_SECONDS must be positive")

    def trusted_proxy_networks(self) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
        """CSMS_TRUSTED_PROXIES as networks (comma-separated addresses or CIDRs)."""
        networks = []
        for text in self.trusted_proxies.split(","):
            if not text.strip():
                continue
            try:
                networks.append(ipaddress.ip_network(text.strip(), strict=False))
            except ValueError:
                raise ConfigurationError(
                    f"CSMS_TRUSTED_PROXIES: {text.strip()!r} is not an IP address or CIDR"
                ) from None
        return tuple(networks)


def env_name(field_name: str) -> str:
    return "CSMS_" + field_name.upper()


def flag_name(field_name: str) -> str:
    return "--" + field_name.replace("_", "-")


def _coerce(name: str, kind: Any, raw: Any) -> Any:
    if not isinstance(raw, str):
        return raw
    text = raw.strip()
    try:
        if kind in ("int", int):
            return int(text)
        if kind in ("float", float):
            return float(text)
    except ValueError:
        raise ConfigurationError(f"{env_name(name)}={raw!r}: not a number") from None
    if kind in ("bool", bool):
        if text.lower() in _TRUE:
            return True
        if text.lower() in _FALSE:
            return False
        raise ConfigurationError(f"{env_name(name)}={raw!r}: must be true or false")
    return text
