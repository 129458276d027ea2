"""OCPP 1.6 CALLs the CSMS sends, built from version-neutral requests."""

from __future__ import annotations

from typing import Any


def set_password(password: str) -> tuple[str, dict[str, Any]]:
    """The 1.6 security extension keeps the Basic-auth password in AuthorizationKey."""
    return "ChangeConfiguration", {"key": "AuthorizationKey", "value": password}


def password_status(response: dict[str, Any]) -> str:
    return str(response.get("status", "Rejected"))
