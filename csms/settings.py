"""Settings: environment variables, overridden by ``csms serve`` flags.

Every setting ``CSMS_X_Y`` has the flag ``--x-y``; flags win.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any
from urllib.parse import urlsplit

from csms.errors import ConfigurationError

LOG_LEVELS = ("debug", "info", "warning", "error", "critical")


@dataclass(frozen=True, slots=True)
class Settings:
    host: str = "0.0.0.0"
    port: int = 9000
    http_port: int = 8080
    database_url: str = "sqlite:///csms.db"
    amqp_url: str = ""
    amqp_exchange: str = "csms.events"
    amqp_command_queue: str = "csms.commands"
    unknown_stations: str = "reject"
    heartbeat_interval: int = 300
    call_timeout: float = 30.0
    log_level: str = "info"
    # Beyond the contract (documented in README "Configuration").
    ws_ping_interval: float = 60.0
    ws_ping_timeout: float = 60.0
    max_frame_bytes: int = 65536
    outbox_retention_hours: float = 72.0
    tls_cert: str = ""
    tls_key: str = ""
    tls_client_ca: str = ""
    api_token: str = ""

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
        if self.call_timeout <= 0:
            raise ConfigurationError("CSMS_CALL_TIMEOUT must be a positive number of seconds")
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
        if not self.amqp_exchange:
            raise ConfigurationError("CSMS_AMQP_EXCHANGE must not be empty")
        if not self.amqp_command_queue:
            raise ConfigurationError("CSMS_AMQP_COMMAND_QUEUE must not be empty")
        if bool(self.tls_cert) != bool(self.tls_key):
            raise ConfigurationError("CSMS_TLS_CERT and CSMS_TLS_KEY must be set together")
        if self.tls_client_ca and not self.tls_cert:
            raise ConfigurationError("CSMS_TLS_CLIENT_CA needs CSMS_TLS_CERT and CSMS_TLS_KEY")
        if self.max_frame_bytes < 1024:
            raise ConfigurationError("CSMS_MAX_FRAME_BYTES must be at least 1024")


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
    return text
