"""Real-world firmware tolerances: strict by default, each one switched on by
the operator's table (CSMS_INTEROP_PROFILES) or setting, logged and counted.

Every test sends what a real charger has been seen to send.
"""

from __future__ import annotations

import asyncio
import base64
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from csms.app import Running
from csms.core.security import hash_password
from csms.telemetry import metrics
from scripts.simulate import CallError, SimStation
from tests.integration.conftest import StartCsms, ws_url

PASSWORD = "interop-password-123456"


def applied(tolerance: str) -> float:
    value = metrics.REGISTRY.get_sample_value(
        "csms_tolerances_applied_total", {"tolerance": tolerance}
    )
    return value or 0.0


def table(tmp_path: Path, text: str) -> str:
    path = tmp_path / "interop.toml"
    path.write_text(text)
    return str(path)


async def raw_handshake(csms: Running, path: str, headers: dict[str, str]) -> int:
    """Send a hand-written upgrade request; the HTTP status of the answer."""
    reader, writer = await asyncio.open_connection("127.0.0.1", csms.stations.port)
    lines = [f"GET {path} HTTP/1.1", f"Host: 127.0.0.1:{csms.stations.port}"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
    await writer.drain()
    status_line = await asyncio.wait_for(reader.readline(), 5)
    writer.close()
    return int(status_line.split()[1])


UPGRADE = {
    "Upgrade": "websocket",
    "Sec-WebSocket-Key": base64.b64encode(b"0123456789abcdef").decode(),
    "Sec-WebSocket-Version": "13",
    "Sec-WebSocket-Protocol": "ocpp1.6",
}


class TestMissingSubprotocol:
    async def test_strict_refuses_a_handshake_without_subprotocol(
        self, start_csms: StartCsms
    ) -> None:
        """The contract's default: no Sec-WebSocket-Protocol, HTTP 400."""
        csms = await start_csms()
        with pytest.raises(InvalidStatus) as caught:
            await connect(ws_url(csms) + "/NOPROTO")
        assert caught.value.response.status_code == 400

    async def test_default_subprotocol_serves_a_station_that_offers_none(
        self, start_csms: StartCsms
    ) -> None:
        """With CSMS_DEFAULT_SUBPROTOCOL=ocpp1.6 the station speaks 1.6; no protocol header
        comes back (it asked for none)."""
        csms = await start_csms(default_subprotocol="ocpp1.6")
        before = applied("missing_subprotocol")
        async with connect(ws_url(csms) + "/NOPROTO") as ws:
            assert ws.subprotocol is None
            assert ws.response is not None
            assert "Sec-WebSocket-Protocol" not in ws.response.headers
            await ws.send(
                '[2, "b1", "BootNotification", {"chargePointVendor": "V", "chargePointModel": "M"}]'
            )
            answer = await ws.recv()
            assert '"status":"Accepted"' in str(answer)
        assert applied("missing_subprotocol") == before + 1
        station = await csms.storage.find_station("NOPROTO")
        assert station is not None
        assert station.ocpp_version == "1.6"


class TestMissingConnectionUpgrade:
    async def test_strict_refuses_an_upgrade_without_connection_header(
        self, start_csms: StartCsms
    ) -> None:
        """RFC 6455 wants Connection: Upgrade; without it websockets answers 426."""
        csms = await start_csms()
        assert await raw_handshake(csms, "/ocpp/NOCONN", UPGRADE) == 426

    async def test_tolerated_globally(self, start_csms: StartCsms, tmp_path: Path) -> None:
        """With missing_connection_upgrade on, the same request is switched to WebSocket."""
        csms = await start_csms(
            interop_profiles=table(tmp_path, 'tolerances = ["missing_connection_upgrade"]')
        )
        before = applied("missing_connection_upgrade")
        assert await raw_handshake(csms, "/ocpp/NOCONN", UPGRADE) == 101
        assert applied("missing_connection_upgrade") == before + 1
        with_header = {**UPGRADE, "Connection": "Upgrade"}
        assert await raw_handshake(csms, "/ocpp/WITHCONN", with_header) == 101
        assert applied("missing_connection_upgrade") == before + 1


class TestStationIdCase:
    async def test_strict_id_is_exact(self, start_csms: StartCsms) -> None:
        """'cp-case-1' is not 'CP-Case-1' by default."""
        csms = await start_csms(unknown_stations="reject")
        await csms.storage.register_station("CP-Case-1", at=datetime.now(UTC))
        with pytest.raises(InvalidStatus) as caught:
            await SimStation(ws_url(csms), "cp-case-1").connect()
        assert caught.value.response.status_code == 404

    async def test_tolerated_id_finds_the_registered_station(
        self, start_csms: StartCsms, tmp_path: Path
    ) -> None:
        """The station is served under its registered id; an ambiguous id is still unknown."""
        csms = await start_csms(
            unknown_stations="reject",
            interop_profiles=table(tmp_path, 'tolerances = ["station_id_case"]'),
        )
        now = datetime.now(UTC)
        await csms.storage.register_station("CP-Case-1", at=now)
        before = applied("station_id_case")
        async with SimStation(ws_url(csms), "cp-case-1") as cp:
            await cp.boot()
            assert csms.stations.find_link("CP-Case-1") is not None
        assert applied("station_id_case") == before + 1
        station = await csms.storage.find_station("CP-Case-1")
        assert station is not None
        assert station.vendor == "CSMS-Sim"
        assert await csms.storage.find_station("cp-case-1") is None
        await csms.storage.register_station("TWIN-a", at=now)
        await csms.storage.register_station("twin-A", at=now)
        with pytest.raises(InvalidStatus) as caught:
            await SimStation(ws_url(csms), "TWIN-A").connect()
        assert caught.value.response.status_code == 404


class TestBasicAuthUser:
    async def connect_as(self, csms: Running, station_id: str, user: str) -> int:
        token = base64.b64encode(f"{user}:{PASSWORD}".encode()).decode()
        try:
            async with connect(
                f"{ws_url(csms)}/{station_id}",
                subprotocols=["ocpp1.6"],  # type: ignore[list-item]
                additional_headers={"Authorization": f"Basic {token}"},
            ):
                return 101
        except InvalidStatus as exc:
            return exc.response.status_code

    async def test_strict_user_must_be_the_station_id(self, start_csms: StartCsms) -> None:
        """The right password under another user name is refused (401 wrong_user)."""
        csms = await start_csms(unknown_stations="reject")
        await csms.storage.register_station(
            "AUTH-1", password_hash=hash_password(PASSWORD), at=datetime.now(UTC)
        )
        assert await self.connect_as(csms, "AUTH-1", "AUTH-1") == 101
        assert await self.connect_as(csms, "AUTH-1", "admin") == 401

    async def test_tolerated_for_a_vendor_from_its_stored_boot(
        self, start_csms: StartCsms, tmp_path: Path
    ) -> None:
        """A station that booted as 'OldCo' before may log in with user 'admin' (the password
        must still match); another vendor's station may not."""
        csms = await start_csms(
            unknown_stations="reject",
            interop_profiles=table(
                tmp_path,
                '[[profiles]]\nname = "OldCo"\nvendor = "OldCo"\n'
                'tolerances = ["basic_auth_user"]\n',
            ),
        )
        for station_id, vendor in (("OLD-1", "OldCo"), ("NEW-1", "NewCo")):
            await csms.storage.register_station(
                station_id, password_hash=hash_password(PASSWORD), at=datetime.now(UTC)
            )
            async with SimStation(ws_url(csms), station_id, password=PASSWORD) as cp:
                await cp.boot(vendor=vendor)
        before = applied("basic_auth_user")
        assert await self.connect_as(csms, "OLD-1", "admin") == 101
        assert applied("basic_auth_user") == before + 1
        assert await self.connect_as(csms, "NEW-1", "admin") == 401
        token = base64.b64encode(b"admin:wrong-password-1234").decode()
        with pytest.raises(InvalidStatus) as caught:
            await connect(
                f"{ws_url(csms)}/OLD-1",
                subprotocols=["ocpp1.6"],  # type: ignore[list-item]
                additional_headers={"Authorization": f"Basic {token}"},
            )
        assert caught.value.response.status_code == 401


LENIENT_TABLE = """
[[profiles]]
name = "OldCo 1.x"
vendor = "OldCo"
firmware = "1.*"
tolerances = [
    "timestamp_without_timezone",
    "timestamp_hour_offset",
    "timestamp_clock_not_set",
    "enum_spelling",
    "data_transfer_object_data",
    "boot_identity_too_long",
]
"""


@pytest.fixture
async def lenient(start_csms: StartCsms, tmp_path: Path) -> Running:
    """A CSMS whose table makes OldCo firmware 1.x lenient; everyone else strict."""
    return await start_csms(interop_profiles=table(tmp_path, LENIENT_TABLE))


async def boot_oldco16(cp: SimStation, firmware: str = "1.4.2") -> None:
    answer = await cp.call(
        "BootNotification",
        {"chargePointVendor": "OldCo", "chargePointModel": "W1", "firmwareVersion": firmware},
    )
    assert answer["status"] == "Accepted"


def status16(status: str, timestamp: str) -> dict[str, Any]:
    return {"connectorId": 1, "errorCode": "NoError", "status": status, "timestamp": timestamp}


class TestTimestamps:
    async def test_strict_refuses_local_time_and_hour_offsets(self, lenient: Running) -> None:
        """Without a matching profile a timestamp without zone, or '+02', is a
        TypeConstraintViolation (the schema's date-time)."""
        async with SimStation(ws_url(lenient), "STRICT-TS") as cp:
            await boot_oldco16(cp, firmware="2.0")  # OldCo, but not 1.x
            for stamp in ("2026-11-26T08:15:00", "2026-11-26T10:15:00+02"):
                with pytest.raises(CallError) as caught:
                    await cp.call("StatusNotification", status16("Available", stamp))
                assert caught.value.code == "TypeConstraintViolation"

    async def test_local_time_is_taken_as_utc(self, lenient: Running) -> None:
        """'2026-11-26T08:15:00' (a station with no zone configured) is 08:15Z."""
        before = applied("timestamp_without_timezone")
        async with SimStation(ws_url(lenient), "OLD-TS1") as cp:
            await boot_oldco16(cp)
            await cp.call("StatusNotification", status16("Available", "2026-11-26T08:15:00"))
        [connector] = await lenient.storage.list_connectors("OLD-TS1")
        assert connector.updated_at == datetime(2026, 11, 26, 8, 15, tzinfo=UTC)
        assert applied("timestamp_without_timezone") == before + 1

    async def test_hour_offset_without_minutes(self, lenient: Running) -> None:
        """'2026-11-26T10:15:00+02' is 08:15Z, on 2.0.1 too."""
        async with SimStation(ws_url(lenient), "OLD-TS2", protocol="ocpp2.0.1") as cp:
            answer = await cp.call(
                "BootNotification",
                {
                    "chargingStation": {
                        "vendorName": "OldCo",
                        "model": "W2",
                        "firmwareVersion": "1.0",
                    },
                    "reason": "PowerUp",
                },
            )
            assert answer["status"] == "Accepted"
            await cp.call(
                "StatusNotification",
                {
                    "timestamp": "2026-11-26T10:15:00+02",
                    "connectorStatus": "Available",
                    "evseId": 1,
                    "connectorId": 1,
                },
            )
        [connector] = await lenient.storage.list_connectors("OLD-TS2")
        assert connector.updated_at == datetime(2026, 11, 26, 8, 15, tzinfo=UTC)

    async def test_1970_before_the_clock_is_set_becomes_the_receive_time(
        self, lenient: Running
    ) -> None:
        """A StartTransaction stamped 1970-01-01T00:00:12Z starts now, and it is counted."""
        before = applied("timestamp_clock_not_set")
        async with SimStation(ws_url(lenient), "OLD-TS3") as cp:
            await boot_oldco16(cp)
            answer = await cp.call(
                "StartTransaction",
                {
                    "connectorId": 1,
                    "idTag": "TAG-1970",
                    "meterStart": 1000,
                    "timestamp": "1970-01-01T00:00:12Z",
                },
            )
        transaction = await lenient.storage.find_transaction_by_ocpp16_id(answer["transactionId"])
        assert transaction is not None
        assert abs((transaction.started_at - datetime.now(UTC)).total_seconds()) < 60
        assert applied("timestamp_clock_not_set") == before + 1


class TestEnumSpelling:
    @pytest.mark.parametrize(
        ("sent", "stored"), [("Charging ", "Charging"), ("SuspendedEv", "SuspendedEV")]
    )
    async def test_case_and_spaces_are_forgiven_for_the_profile(
        self, lenient: Running, sent: str, stored: str
    ) -> None:
        """'Charging ' and 'SuspendedEv' (seen in the field) are the enum values they mean."""
        async with SimStation(ws_url(lenient), "OLD-ENUM") as cp:
            await boot_oldco16(cp)
            await cp.call("StatusNotification", status16(sent, "2026-11-26T08:15:00Z"))
        [connector] = await lenient.storage.list_connectors("OLD-ENUM")
        assert connector.status == stored

    async def test_strict_station_gets_property_constraint_violation(
        self, lenient: Running
    ) -> None:
        """Another vendor's 'Charging ' is outside the enum."""
        async with SimStation(ws_url(lenient), "NEW-ENUM") as cp:
            await cp.boot(vendor="NewCo")
            with pytest.raises(CallError) as caught:
                await cp.call("StatusNotification", status16("Charging ", "2026-11-26T08:15:00Z"))
            assert caught.value.code == "PropertyConstraintViolation"


class TestDataTransferObject:
    async def test_object_data_is_kept_as_its_json_text(self, lenient: Running) -> None:
        """1.6 DataTransfer.data is a string; OldCo sends an object: accepted as JSON text."""
        payload = {"vendorId": "com.oldco", "messageId": "Diag", "data": {"temp": 41.5}}
        async with SimStation(ws_url(lenient), "OLD-DT") as cp:
            await boot_oldco16(cp)
            assert (await cp.call("DataTransfer", payload))["status"] == "UnknownVendorId"
        [kept] = await lenient.storage.list_notifications("OLD-DT", "DataTransfer")
        assert kept.payload["data"] == '{"temp":41.5}'

    async def test_strict_refuses_object_data(self, lenient: Running) -> None:
        """Without the tolerance the object is a TypeConstraintViolation."""
        payload = {"vendorId": "com.newco", "data": {"temp": 41.5}}
        async with SimStation(ws_url(lenient), "NEW-DT") as cp:
            await cp.boot(vendor="NewCo")
            with pytest.raises(CallError) as caught:
                await cp.call("DataTransfer", payload)
            assert caught.value.code == "TypeConstraintViolation"


class TestBootIdentityTooLong:
    SERIAL = "SN-2026-ABCDEFGHIJKLMNOPQRSTUVWXYZ"  # 33 characters; the 1.6 schema allows 25

    async def test_an_over_long_serial_number_is_truncated_and_the_station_boots(
        self, lenient: Running
    ) -> None:
        """OldCo's 33-character chargeBoxSerialNumber is kept as its first 25; it boots."""
        before = applied("boot_identity_too_long")
        async with SimStation(ws_url(lenient), "OLD-SN") as cp:
            answer = await cp.call(
                "BootNotification",
                {
                    "chargePointVendor": "OldCo",
                    "chargePointModel": "W1",
                    "firmwareVersion": "1.4.2",
                    "chargeBoxSerialNumber": self.SERIAL,
                },
            )
            assert answer["status"] == "Accepted"
        station = await lenient.storage.find_station("OLD-SN")
        assert station is not None
        assert station.serial_number == self.SERIAL[:25]
        assert applied("boot_identity_too_long") == before + 1

    async def test_strict_refuses_an_over_long_serial_number(self, lenient: Running) -> None:
        """Another vendor's over-long serial number is a TypeConstraintViolation, as before."""
        async with SimStation(ws_url(lenient), "NEW-SN") as cp:
            with pytest.raises(CallError) as caught:
                await cp.call(
                    "BootNotification",
                    {
                        "chargePointVendor": "NewCo",
                        "chargePointModel": "W1",
                        "chargeBoxSerialNumber": self.SERIAL,
                    },
                )
            assert caught.value.code == "TypeConstraintViolation"

    async def test_only_boot_notification_strings_are_truncated(self, lenient: Running) -> None:
        """An over-long idTag in Authorize is still refused for the lenient profile."""
        async with SimStation(ws_url(lenient), "OLD-SN2") as cp:
            await boot_oldco16(cp)
            with pytest.raises(CallError) as caught:
                await cp.call("Authorize", {"idTag": "X" * 21})
            assert caught.value.code in {"TypeConstraintViolation", "PropertyConstraintViolation"}


class TestProfileChoice:
    async def test_stored_boot_applies_from_the_first_message_of_the_next_connection(
        self, lenient: Running
    ) -> None:
        """After one boot as OldCo 1.x, the station's next connection is lenient before it
        boots again (the handshake reads the stored vendor/model)."""
        async with SimStation(ws_url(lenient), "OLD-AGAIN") as cp:
            with pytest.raises(CallError):  # never booted: strict
                await cp.call("StatusNotification", status16("Available", "2026-11-26T08:15:00"))
            await boot_oldco16(cp)
        async with SimStation(ws_url(lenient), "OLD-AGAIN") as cp:
            await cp.call("StatusNotification", status16("Available", "2026-11-26T08:15:00"))


class TestBinaryFrames:
    async def test_a_binary_frame_closes_the_connection_with_1003_unhandled(
        self, csms: Running
    ) -> None:
        """OCPP-J is text frames: a CALL in a binary frame is not handled (its
        status is not stored) and the connection closes with 1003."""
        async with SimStation(ws_url(csms), "BIN-1") as cp:
            await cp.boot()
            frame = [2, "bin-1", "StatusNotification", status16("Faulted", "2026-11-26T08:15:00Z")]
            await cp.ws.send(orjson.dumps(frame))  # bytes: a binary frame
            assert await cp.wait_closed() == 1003
            assert cp.close_reason == "OCPP-J messages are text frames"
        assert await csms.storage.list_connectors("BIN-1") == []

    async def test_tolerated_binary_frames_are_read_as_text(
        self, start_csms: StartCsms, tmp_path: Path
    ) -> None:
        """With the binary_frames tolerance the JSON in a binary frame is handled
        and answered (in a text frame)."""
        running = await start_csms(
            interop_profiles=table(tmp_path, 'tolerances = ["binary_frames"]')
        )
        async with SimStation(ws_url(running), "BIN-2") as cp:
            answer = await cp.send_raw(orjson.dumps([2, "bin-2", "Heartbeat", {}]))
            assert answer[:2] == [3, "bin-2"]
            assert cp.connected
