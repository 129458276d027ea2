"""Station passwords: salted scrypt hashes (memory-hard, standard library).

Only the hash is stored. A verified password is remembered as a cheap
keyed digest, so a reconnect storm does not run scrypt for every station.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import secrets

_N, _R, _P = 2**14, 8, 1
_PREFIX = "scrypt"


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = _scrypt(password, salt, _N, _R, _P)
    return "$".join((_PREFIX, str(_N), str(_R), str(_P), _b64(salt), _b64(digest)))


def verify_password(password: str, stored: str) -> bool:
    try:
        prefix, n, r, p, salt, digest = stored.split("$")
        if prefix != _PREFIX:
            return False
        expected = base64.b64decode(digest)
        actual = _scrypt(password, base64.b64decode(salt), int(n), int(r), int(p))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(expected, actual)


class PasswordVerifier:
    """Verifies off the event loop and remembers recent successes."""

    def __init__(self) -> None:
        self._key = secrets.token_bytes(32)
        self._verified: dict[tuple[str, str], bytes] = {}

    async def verify(self, station_id: str, password: str, stored: str) -> bool:
        mac = hmac.digest(self._key, password.encode(), "sha256")
        if hmac.compare_digest(self._verified.get((station_id, stored), b""), mac):
            return True
        ok = await asyncio.get_running_loop().run_in_executor(
            None, verify_password, password, stored
        )
        if ok:
            if len(self._verified) > 200_000:
                self._verified.clear()
            self._verified[(station_id, stored)] = mac
        return ok


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(password.encode(), salt=salt, n=n, r=r, p=p, maxmem=64 * 1024 * 1024)


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()
