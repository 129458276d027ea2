"""OCPP 2.0.1 CALLs the CSMS sends, built from version-neutral requests."""

from __future__ import annotations

from typing import Any


def set_password(password: str) -> tuple[str, dict[str, Any]]:
    return "SetVariables", {
        "setVariableData": [
            {
                "attributeValue": password,
                "component": {"name": "SecurityCtrlr"},
                "variable": {"name": "BasicAuthPassword"},
            }
        ]
    }


def password_status(response: dict[str, Any]) -> str:
    results = response.get("setVariableResult") or [{}]
    return str(results[0].get("attributeStatus", "Rejected"))
