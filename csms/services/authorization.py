"""Id token look-ups against the registry."""

from __future__ import annotations

import structlog

from csms.core.domain import AuthorizationStatus, IdTokenInfo
from csms.core.ports import Clock, TokenStore

log = structlog.get_logger("csms.authorization")


class AuthorizationService:
    """Answers for id tokens from the registry; reads a ``TokenStore`` only."""

    def __init__(self, tokens: TokenStore, clock: Clock) -> None:
        self._tokens = tokens
        self._clock = clock

    async def authorize(
        self, id_token: str, *, unknown: AuthorizationStatus = AuthorizationStatus.INVALID
    ) -> IdTokenInfo:
        """The registry's verdict on ``id_token`` now; ``unknown`` is what a
        token that is not registered gets (1.6 says Invalid, 2.0.1 Unknown)."""
        token = await self._tokens.find_id_token(id_token)
        if token is None:
            info = IdTokenInfo(unknown)
        else:
            info = IdTokenInfo(token.status_at(self._clock()), token.expires_at, token.group_id)
        # Personal data: CSMS_LOG_MASK_TOKENS=true keeps the last 4 characters only.
        log.info("id_token_checked", id_token=id_token, status=info.status.value)
        return info
