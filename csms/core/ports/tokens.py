"""The id token registry that authorization reads."""

from __future__ import annotations

from typing import Protocol

from csms.core.domain import IdToken


class TokenStore(Protocol):
    """Id tokens by their text; ``find_id_token`` returns None when absent."""

    async def find_id_token(self, id_token: str) -> IdToken | None: ...

    async def put_id_token(self, token: IdToken) -> IdToken:
        """Create or replace a registry entry; returns it as stored (an
        ``updated_at`` of None is stamped with the current time)."""
        ...

    async def list_id_tokens(self) -> list[IdToken]:
        """Every entry, by id token."""
        ...

    async def delete_id_token(self, id_token: str) -> bool:
        """Remove a registry entry; False if there was none."""
        ...
