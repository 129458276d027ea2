"""What the services need of one OCPP version, as a Protocol: the composition
root injects the adapters of protocols/ (protocols.common.Adapter), so no
service imports them."""

from __future__ import annotations

from typing import Any, Protocol

from csms.services.commands import Effects, NeutralCommand

Payload = dict[str, Any]


class CommandVocabulary(Protocol):
    """One version's CSMS-initiated calls (protocols.command_set.CommandSet)."""

    def build(self, command: NeutralCommand, /) -> tuple[str, Payload]:
        """A neutral command as (action, payload); InvalidRequestError if this
        version cannot say it."""
        ...

    def effects(
        self, station_id: str, action: str, request: Payload, response: Payload, /
    ) -> Effects:
        """What a station's answer changes; OcppError if it cannot be read."""
        ...

    def mask(self, action: str, payload: Payload, response: bool, /) -> Payload:
        """A copy with every secret masked (the payload itself when it has none)."""
        ...

    def password(self, action: str, request: Payload, /) -> str | None:
        """The Basic-auth password a CALL sets, if any."""
        ...


class OcppVersion(Protocol):
    """One OCPP version as the dispatcher and password delivery use it."""

    @property
    def ocpp_version(self) -> str: ...

    @property
    def commands(self) -> CommandVocabulary: ...

    def validate_request(self, action: str, payload: Payload, /) -> None:
        """Check a CALL the CSMS is about to send; OcppError if it is not valid."""
        ...

    def validate_response(self, action: str, payload: Payload, /) -> None:
        """Check a station's CALLRESULT; OcppError if it is not valid."""
        ...

    def set_password(self, password: str, /) -> tuple[str, Payload]:
        """The (action, payload) that sets the station's Basic-auth password."""
        ...

    def password_status(self, answer: Payload, /) -> str:
        """Accepted, Rejected...: the station's answer to set_password's CALL."""
        ...
