"""Signed meter values reach storage, events and the REST API exactly as the station sent them."""

from __future__ import annotations

from typing import Any

from csms.app import Running
from scripts.simulate import SimStation
from tests.integration.conftest import ws_url

# What an Eichrecht meter sends: an OCMF document, byte for byte (spaces, escapes, order).
OCMF = (
    'OCMF|{"FV":"1.0","GI":"ACME Meter 2","GS":"0815","PG":"T1",'
    '"RD":[{"TM":"2026-12-03T09:00:00,000+0000 S","TX":"B","RV":12.345,"RI":"1-b:1.8.0",'
    '"RU":"kWh","ST":"G"}]}|{"SA":"ECDSA-secp256r1-SHA256","SD":"3045022100ab\\u00e9"}'
)


async def meter_events(csms: Running, station_id: str) -> list[dict[str, Any]]:
    rows = await csms.storage.outbox_list(1_000, pending_only=False)
    return [
        r.event.data
        for r in sorted(rows, key=lambda r: r.seq)
        if r.event.type == "meter.values" and r.event.station_id == station_id
    ]


class TestSignedMeterValues:
    async def test_a_16_signed_value_rides_with_the_reading_it_signs(self, csms: Running) -> None:
        """1.6 Raw + SignedData in one meterValue: one sample, its signed_data the exact text."""
        async with SimStation(ws_url(csms), "SIGNED-16") as cp:
            await cp.boot()
            tx_id = await cp.start(1, "TAG", 12_000, "2026-12-03T08:59:00Z")
            await cp.call(
                "MeterValues",
                {
                    "connectorId": 1,
                    "transactionId": tx_id,
                    "meterValue": [
                        {
                            "timestamp": "2026-12-03T09:00:00Z",
                            "sampledValue": [
                                {"value": "5000", "measurand": "Power.Active.Import", "unit": "W"},
                                {"value": "12345", "unit": "Wh"},
                                {"value": OCMF, "format": "SignedData", "unit": "Wh"},
                            ],
                        }
                    ],
                },
            )
        [data] = await meter_events(csms, "SIGNED-16")
        power, energy = data["samples"]
        assert (energy["value"], energy["signed_data"]) == (12_345, OCMF)
        assert power["signed_data"] is None
        [_, stored] = await csms.storage.list_meter_samples("SIGNED-16", str(tx_id))
        assert stored.signed_data == OCMF

    async def test_a_201_signed_meter_value_is_kept_as_sent(self, csms: Running) -> None:
        """2.0.1 signedMeterValue: the object, every key and value as sent, in event and storage."""
        signed = {
            "signedMeterData": OCMF,
            "signingMethod": "ECDSA-secp256r1-SHA256",
            "encodingMethod": "OCMF",
            "publicKey": "3059301306072A8648CE3D020106082A8648CE3D03010703420004",
        }
        async with SimStation(ws_url(csms), "SIGNED-201", protocol="ocpp2.0.1") as cp:
            await cp.boot201()
            await cp.call(
                "TransactionEvent",
                {
                    "eventType": "Started",
                    "timestamp": "2026-12-03T09:00:00Z",
                    "triggerReason": "CablePluggedIn",
                    "seqNo": 0,
                    "transactionInfo": {"transactionId": "TX-SIGNED"},
                    "evse": {"id": 1, "connectorId": 1},
                    "meterValue": [
                        {
                            "timestamp": "2026-12-03T09:00:00Z",
                            "sampledValue": [
                                {
                                    "value": 12345.0,
                                    "context": "Transaction.Begin",
                                    "signedMeterValue": signed,
                                }
                            ],
                        }
                    ],
                },
            )
        [data] = await meter_events(csms, "SIGNED-201")
        assert data["samples"][0]["signed_data"] == signed
        [stored] = await csms.storage.list_meter_samples("SIGNED-201", "TX-SIGNED")
        assert stored.signed_data == signed

    async def test_an_unsigned_reading_says_so(self, csms: Running) -> None:
        """A plain reading's sample has signed_data null: the key is always there."""
        async with SimStation(ws_url(csms), "PLAIN-16") as cp:
            await cp.boot()
            await cp.call(
                "MeterValues",
                {
                    "connectorId": 1,
                    "meterValue": [
                        {"timestamp": "2026-12-03T09:00:00Z", "sampledValue": [{"value": "7"}]}
                    ],
                },
            )
        [data] = await meter_events(csms, "PLAIN-16")
        assert data["samples"][0]["signed_data"] is None
