"""OCPP 1.6J (with the 1.6 security extension)."""

from __future__ import annotations

from csms.transport.rpc import ErrorCodes
from protocols.common import Adapter
from protocols.ocpp16 import commands
from protocols.ocpp16.routes import ROUTES
from protocols.schemas import SchemaSet

SUBPROTOCOL = "ocpp1.6"

# OCPP-J 1.6 spells FormationViolation. The contract spells the occurrence
# code "OccurrenceConstraintViolation" (1.6 itself had "Occurence...").
CODES = ErrorCodes(
    formation="FormationViolation",
    occurrence="OccurrenceConstraintViolation",
    framework="FormationViolation",
    message_type_not_supported="FormationViolation",
    # OCPP-J 1.6 section 4.2.3, with its typo "Occurence" (errata: kept for
    # compatibility) and the spelling the CSMS itself sends (ADR 0003).
    spec=frozenset(
        {
            "NotImplemented",
            "NotSupported",
            "InternalError",
            "ProtocolError",
            "SecurityError",
            "FormationViolation",
            "PropertyConstraintViolation",
            "OccurenceConstraintViolation",
            "OccurrenceConstraintViolation",
            "TypeConstraintViolation",
            "GenericError",
        }
    ),
)


def adapter() -> Adapter:
    return Adapter(
        SUBPROTOCOL,
        "1.6",
        CODES,
        SchemaSet("v16", "", CODES),
        ROUTES,
        set_password=commands.set_password,
        password_status=commands.password_status,
        commands=commands.COMMANDS,
    )
