"""AuthorizationService on the in-memory storage: the registry's verdict on a token."""

from __future__ import annotations

from datetime import timedelta

from csms.adapters.storage.memory import MemoryStorage
from csms.core.domain import AuthorizationStatus, IdToken
from csms.services.authorization import AuthorizationService
from tests.unit.services_fixture import T0, FakeClock


class TestAuthorize:
    async def test_registered_tokens_get_their_status(self) -> None:
        """Accepted and Blocked tokens are answered as registered, with their group."""
        storage = MemoryStorage()
        await storage.put_id_token(IdToken("OK", group_id="FLEET"))
        await storage.put_id_token(IdToken("NO", AuthorizationStatus.BLOCKED))
        service = AuthorizationService(storage, FakeClock())
        accepted = await service.authorize("OK")
        assert accepted.status == AuthorizationStatus.ACCEPTED
        assert accepted.group_id == "FLEET"
        assert (await service.authorize("NO")).status == AuthorizationStatus.BLOCKED

    async def test_a_passed_expiry_wins_over_accepted(self) -> None:
        """A token accepted until a moment now past is answered Expired."""
        storage = MemoryStorage()
        clock = FakeClock()
        await storage.put_id_token(IdToken("OLD", expires_at=T0 + timedelta(hours=1)))
        service = AuthorizationService(storage, clock)
        assert (await service.authorize("OLD")).status == AuthorizationStatus.ACCEPTED
        clock.advance(3600)
        assert (await service.authorize("OLD")).status == AuthorizationStatus.EXPIRED

    async def test_an_unknown_token_gets_the_protocols_word(self) -> None:
        """An unregistered token is Invalid by default (1.6) or what the caller says (2.0.1)."""
        service = AuthorizationService(MemoryStorage(), FakeClock())
        assert (await service.authorize("WHO")).status == AuthorizationStatus.INVALID
        unknown = await service.authorize("WHO", unknown=AuthorizationStatus.UNKNOWN)
        assert unknown.status == AuthorizationStatus.UNKNOWN
