"""A rotated password waiting in the database, sealed with AES-GCM.

The key is the cluster's: made by the first process that needs it and kept
in the ``secrets`` table, so any process can deliver a password that another
accepted. The station id is the associated data: a sealed value copied to
another station's row does not open. What this protects, and what not, is in
docs/security.md ("Passwords").
"""

from __future__ import annotations

import base64
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from csms.core.ports import StationStore

KEY_NAME = "password-sealing-key-v1"
_PREFIX = "v1:"
_NONCE = 12


class PasswordSealer:
    """The ``Sealer`` port; ``await PasswordSealer.load(store)`` gets the cluster's key."""

    def __init__(self, key: bytes) -> None:
        self._aead = AESGCM(key)

    @classmethod
    async def load(cls, store: StationStore) -> PasswordSealer:
        candidate = base64.b64encode(AESGCM.generate_key(bit_length=256)).decode()
        return cls(base64.b64decode(await store.secret(KEY_NAME, candidate)))

    def seal(self, station_id: str, secret: str) -> str:
        nonce = os.urandom(_NONCE)
        sealed = self._aead.encrypt(nonce, secret.encode(), station_id.encode())
        return _PREFIX + base64.b64encode(nonce + sealed).decode()

    def unseal(self, station_id: str, sealed: str) -> str | None:
        if not sealed.startswith(_PREFIX):
            return None
        try:
            raw = base64.b64decode(sealed[len(_PREFIX) :], validate=True)
            plain = self._aead.decrypt(raw[:_NONCE], raw[_NONCE:], station_id.encode())
        except (ValueError, InvalidTag):
            return None
        return plain.decode()
