"""Who gets in: station id from the path, subprotocols, registration and Basic auth."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from csms.core.security import hash_password
from scripts.simulate import SimStation
from tests.integration.conftest import StartCsms, ws_url


def status_of(caught: pytest.ExceptionInfo[InvalidStatus]) -> int:
    return caught.value.response.status_code


class TestStationId:
    @pytest.mark.parametrize("prefix", ["/ocpp", "", "/a/b/c"])
    async def test_last_path_segment_names_the_station(
        self, start_csms: StartCsms, prefix: str
    ) -> None:
        """/ocpp/CP-001, /CP-001 and /a/b/c/CP-001 all name CP-001."""
        csms = await start_csms()
        async with SimStation(ws_url(csms, prefix), "CP-001") as cp:
            await cp.boot()
        assert await csms.storage.find_station("CP-001") is not None

    async def test_percent_encoded_id_is_decoded(self, start_csms: StartCsms) -> None:
        """A station id with a space and a slash arrives percent-encoded and is decoded."""
        csms = await start_csms()
        async with SimStation(ws_url(csms), "Hall A/CP 7") as cp:
            await cp.heartbeat()
        assert await csms.storage.find_station("Hall A/CP 7") is not None

    @pytest.mark.parametrize("path", ["/ocpp/", "/", "/ocpp/" + "x" * 49])
    async def test_empty_or_overlong_id_is_refused_with_400(
        self, start_csms: StartCsms, path: str
    ) -> None:
        """An empty or > 48-character id is a bad request, even for unknown-station 'reject'."""
        csms = await start_csms(unknown_stations="reject")
        with pytest.raises(InvalidStatus) as caught:
            await connect(f"ws://127.0.0.1:{csms.stations.port}{path}", subprotocols=["ocpp1.6"])  # type: ignore[list-item]
        assert status_of(caught) == 400


class TestSubprotocol:
    async def test_unsupported_or_missing_subprotocol_is_refused_with_400(
        self, start_csms: StartCsms
    ) -> None:
        """Only ocpp1.6 and ocpp2.0.1 are spoken."""
        csms = await start_csms()
        for offer in (["ocpp1.5"], []):
            with pytest.raises(InvalidStatus) as caught:
                await connect(ws_url(csms) + "/CP-1", subprotocols=offer)  # type: ignore[arg-type]
            assert status_of(caught) == 400

    async def test_the_supported_offer_is_chosen(self, start_csms: StartCsms) -> None:
        """Of ['ocpp1.5', 'ocpp1.6'] the server picks ocpp1.6."""
        csms = await start_csms()
        async with connect(ws_url(csms) + "/CP-1", subprotocols=["ocpp1.5", "ocpp1.6"]) as ws:  # type: ignore[list-item]
            assert ws.subprotocol == "ocpp1.6"


class TestRegistration:
    async def test_unknown_station_is_refused_with_404_when_policy_rejects(
        self, start_csms: StartCsms
    ) -> None:
        """With CSMS_UNKNOWN_STATIONS=reject an unregistered id gets HTTP 404."""
        csms = await start_csms(unknown_stations="reject")
        with pytest.raises(InvalidStatus) as caught:
            await SimStation(ws_url(csms), "STRANGER").connect()
        assert status_of(caught) == 404
        assert await csms.storage.find_station("STRANGER") is None

    async def test_registered_station_gets_in_when_policy_rejects(
        self, start_csms: StartCsms
    ) -> None:
        """A station registered while the server runs is admitted at its next handshake."""
        csms = await start_csms(unknown_stations="reject")
        await csms.storage.register_station("KNOWN", at=datetime.now(UTC))
        async with SimStation(ws_url(csms), "KNOWN") as cp:
            assert (await cp.boot())["status"] == "Accepted"

    async def test_unknown_station_is_registered_when_policy_accepts(
        self, start_csms: StartCsms
    ) -> None:
        """With 'accept' the first connect registers the station."""
        csms = await start_csms(unknown_stations="accept")
        async with SimStation(ws_url(csms), "NEW-1") as cp:
            await cp.heartbeat()
        assert await csms.storage.find_station("NEW-1") is not None


class TestBasicAuth:
    async def test_right_password_gets_in_wrong_or_missing_gets_401(
        self, start_csms: StartCsms
    ) -> None:
        """A station registered with a password must present it (user = station id)."""
        csms = await start_csms(unknown_stations="reject")
        await csms.storage.register_station(
            "SECURE", password_hash=hash_password("s3cret-Pa55"), at=datetime.now(UTC)
        )
        async with SimStation(ws_url(csms), "SECURE", password="s3cret-Pa55") as cp:
            await cp.heartbeat()
        for password in ("wrong", None):
            with pytest.raises(InvalidStatus) as caught:
                await SimStation(ws_url(csms), "SECURE", password=password).connect()
            assert status_of(caught) == 401
            assert "Basic" in caught.value.response.headers["WWW-Authenticate"]

    async def test_password_is_stored_only_as_a_salted_hash(self) -> None:
        """Two hashes of one password differ and neither contains it."""
        first, second = hash_password("s3cret-Pa55"), hash_password("s3cret-Pa55")
        assert first != second
        assert "s3cret-Pa55" not in first


class TestReplacement:
    async def test_second_connection_with_same_id_replaces_the_first(
        self, start_csms: StartCsms
    ) -> None:
        """The older socket is closed; the newer one keeps working."""
        csms = await start_csms()
        old = SimStation(ws_url(csms), "TWIN")
        await old.connect()
        async with SimStation(ws_url(csms), "TWIN") as new:
            assert await old.wait_closed() is not None
            with pytest.raises(ConnectionClosed):
                await old.heartbeat()
            await new.heartbeat()
            assert csms.stations.find_link("TWIN") is not None
        await old.close()


class TestVersionChoice:
    async def test_newest_offered_version_wins(self, start_csms: StartCsms) -> None:
        """A station offering ocpp1.6 and ocpp2.0.1 is served 2.0.1, and it is recorded."""
        csms = await start_csms()
        async with connect(
            ws_url(csms) + "/DUAL",
            subprotocols=["ocpp1.6", "ocpp2.0.1"],  # type: ignore[list-item]
        ) as ws:
            assert ws.subprotocol == "ocpp2.0.1"
            await ws.send('[2, "h", "Heartbeat", {}]')
            assert '"currentTime"' in str(await ws.recv())
        station = await csms.storage.find_station("DUAL")
        assert station is not None
        assert station.ocpp_version == "2.0.1"
