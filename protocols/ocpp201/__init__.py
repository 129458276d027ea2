"""OCPP 2.0.1."""

from __future__ import annotations

from csms.transport.rpc import ErrorCodes
from protocols.common import Adapter
from protocols.ocpp201 import commands
from protocols.ocpp201.routes import ROUTES
from protocols.schemas import SchemaSet

SUBPROTOCOL = "ocpp2.0.1"

# The contract names one set of codes for both versions, so a client sees the
# same CALLERROR for the same fault whatever it speaks (docs/adr/0003). The
# 2.0.1 text spells the structural one "FormatViolation"; 2.0.1 adds
# MessageTypeNotSupported.
CODES = ErrorCodes(
    formation="FormationViolation",
    occurrence="OccurrenceConstraintViolation",
    framework="FormationViolation",
    message_type_not_supported="MessageTypeNotSupported",
    # OCPP-J 2.0.1 section 4.3, and FormationViolation, which the CSMS sends (ADR 0003).
    spec=frozenset(
        {
            "FormatViolation",
            "FormationViolation",
            "GenericError",
            "InternalError",
            "MessageTypeNotSupported",
            "NotImplemented",
            "NotSupported",
            "OccurrenceConstraintViolation",
            "PropertyConstraintViolation",
            "ProtocolError",
            "RpcFrameworkError",
            "SecurityError",
            "TypeConstraintViolation",
        }
    ),
)


def adapter() -> Adapter:
    return Adapter(
        SUBPROTOCOL,
        "2.0.1",
        CODES,
        SchemaSet("v201", "Request", CODES),
        ROUTES,
        set_password=commands.set_password,
        password_status=commands.password_status,
        commands=commands.COMMANDS,
    )
