#!/usr/bin/env python3
"""Charging stations that speak OCPP-J to a CSMS: a demo for people, a client for tests.

Watch a server work (register the stations and the token first, or start the
server with ``CSMS_UNKNOWN_STATIONS=accept``)::

    csms stations add SIM-001 && csms tokens add 04A1B2C3
    python scripts/simulate.py --url ws://127.0.0.1:9000/ocpp --stations 1

Drive a server from a test::

    async with SimStation("ws://127.0.0.1:9000/ocpp", "CP-1") as station:
        await station.boot()
        transaction_id = await station.start(1, "04A1B2C3", meter_start_wh=1000)
        await station.stop(transaction_id, meter_stop_wh=1500)

``SimStation`` reads every frame on a background task: the CSMS's own CALLs
are answered by ``on_call`` (override it) at any time, not only while the
station waits for an answer. ``python scripts/simulate.py --selfcheck`` checks
every payload the simulator builds against the official OCPP JSON schemas.

Errors, drawn as a tree::

    SimError
    ├── CallError        the CSMS answered a CALLERROR (or on_call raises it to send one)
    └── MalformedFrame   the CSMS sent a frame that is not an OCPP-J JSON array

Connection failures surface as the ``websockets`` exceptions: ``InvalidStatus``
when the handshake is refused (its ``response.status_code`` is 400, 401, 404),
``ConnectionClosed`` when the socket closes under a waiting call.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import importlib
import importlib.resources
import random
import signal
import ssl
import sys
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, NamedTuple, Self
from urllib.parse import quote

import orjson
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus, WebSocketException
from websockets.typing import Subprotocol

__all__ = [
    "OCPP16",
    "OCPP201",
    "CallError",
    "MalformedFrame",
    "ReceivedCall",
    "SimError",
    "SimStation",
    "new_transaction_id",
    "utc_timestamp",
]

OCPP16 = "ocpp1.6"
OCPP201 = "ocpp2.0.1"

JsonObject = dict[str, Any]
Frame = list[Any]
Timestamp = datetime | str | None

CALL, CALLRESULT, CALLERROR = 2, 3, 4

VENDOR = "CSMS-Sim"
MODEL = "SimStation"
FIRMWARE = "sim-1.0"
BATTERY_WH = 60_000.0  # the simulated car's battery, for a believable SoC
START_SOC_PERCENT = 20.0
NOMINAL_POWER_W = 11_000.0  # 3 x 16 A x 230 V
NOMINAL_VOLTAGE_V = 230.0

_READONLY_CONFIGURATION = frozenset({"NumberOfConnectors"})

# What a station answers to the CSMS's CALLs when nothing better applies: most
# actions take {"status": "Accepted"}; these take something else.
_FIXED_ANSWERS: dict[str, dict[str, JsonObject]] = {
    OCPP16: {
        "GetDiagnostics": {},
        "UnlockConnector": {"status": "Unlocked"},
        "UpdateFirmware": {},
    },
    OCPP201: {
        "CostUpdated": {},
        "GetTransactionStatus": {"messagesInQueue": False},
        "UnlockConnector": {"status": "Unlocked"},
        "UnpublishFirmware": {"status": "Unpublished"},
    },
}


class SimError(Exception):
    """Base class of the simulator's errors."""


class CallError(SimError):
    """A CALLERROR: ``call()`` raises it on the CSMS's; ``on_call`` raises it to send one."""

    def __init__(self, code: str, description: str = "", details: JsonObject | None = None) -> None:
        super().__init__(f"{code}: {description}" if description else code)
        self.code = code
        self.description = description
        self.details: JsonObject = details if details is not None else {}


class MalformedFrame(SimError):
    """The CSMS sent a frame that is not an OCPP-J message."""


class ReceivedCall(NamedTuple):
    """A CALL the CSMS sent to the station; compares equal to ``(action, payload)``."""

    action: str
    payload: JsonObject


def utc_timestamp(value: Timestamp = None) -> str:
    """Return ``value`` (default: now) as ISO 8601 UTC text: ``2024-05-01T12:00:00.000Z``.

    A string is passed through unchanged; a naive datetime is taken as UTC.
    """
    if isinstance(value, str):
        return value
    moment = datetime.now(UTC) if value is None else value
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def new_transaction_id() -> str:
    """Return a fresh OCPP 2.0.1 transactionId (a UUID, within the 36-character limit)."""
    return str(uuid.uuid4())


class SimStation:
    """One simulated charging station on one WebSocket connection.

    Use it as an async context manager (``connect()`` / ``close()`` also work,
    and a closed station may connect again, e.g. with a rotated ``password``).
    The connect URL is ``url`` + ``/`` + the percent-encoded station id. A
    refused handshake raises ``websockets.exceptions.InvalidStatus``.

    ``call_timeout`` bounds every wait: an answer, ``send_raw()``,
    ``wait_for_call()``, ``wait_closed()``. ``call()`` does not serialise
    CALLs: OCPP-J allows one outstanding CALL per side, and tests may break
    that rule on purpose. ``trace`` gets one line per CALL and its answer.

    What tests read: ``received_calls`` (every CALL from the CSMS, in order),
    ``handler_errors`` (exceptions ``on_call`` raised, answered InternalError),
    ``last_result`` (the last CALLRESULT payload), ``password`` (rotated by the
    CSMS), ``configuration`` / ``variables`` (the station's settings),
    ``close_code``, ``subprotocol`` and ``ws`` (the raw connection).
    """

    def __init__(
        self,
        url: str,
        station_id: str,
        *,
        protocol: str = OCPP16,
        password: str | None = None,
        ssl_context: ssl.SSLContext | None = None,
        call_timeout: float = 10.0,
        open_timeout: float = 10.0,
        trace: Callable[[str], None] | None = None,
    ) -> None:
        self.url = url.rstrip("/") + "/" + quote(station_id, safe="")
        self.station_id = station_id
        self.protocol = protocol
        self.password = password
        self.call_timeout = call_timeout
        self.open_timeout = open_timeout
        self.trace = trace
        self.received_calls: list[ReceivedCall] = []
        self.handler_errors: list[Exception] = []
        self.last_result: JsonObject | None = None
        # The station's settings, read and written by the CSMS's CALLs.
        self.configuration: dict[str, str] = {
            "HeartbeatInterval": "300",
            "MeterValueSampleInterval": "60",
            "MeterValuesSampledData": (
                "Energy.Active.Import.Register,Power.Active.Import,Current.Import,"
                "Voltage,SoC,Temperature"
            ),
            "NumberOfConnectors": "1",
        }
        self.local_list_version = 0  # SendLocalList sets it, GetLocalListVersion reads it
        self.variables: dict[tuple[str, str], str] = {
            ("OCPPCommCtrlr", "HeartbeatInterval"): "300",
            ("SampledDataCtrlr", "TxUpdatedInterval"): "60",
            ("SecurityCtrlr", "SecurityProfile"): "1",
        }
        self._ssl_context = ssl_context
        self._ws: ClientConnection | None = None
        self._reader: asyncio.Task[None] | None = None
        self._handlers: set[asyncio.Task[None]] = set()
        self._pending: dict[str, asyncio.Future[Frame]] = {}
        self._unsolicited: asyncio.Queue[Frame | BaseException] = asyncio.Queue()
        self._call_arrived = asyncio.Event()
        self._claimed_calls: set[int] = set()
        self._closed: ConnectionClosed | None = None
        self._meter_start_wh: dict[int | str, float] = {}
        self._rng = random.Random(station_id)  # the same station draws the same "noise"

    # -- connection --------------------------------------------------------

    async def __aenter__(self) -> Self:
        await self.connect()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def connect(self) -> None:
        """Open the WebSocket (subprotocol ``protocol``, Basic auth when a password is set)."""
        if self._reader is not None and not self._reader.done():
            raise SimError(f"station {self.station_id!r} is already connected")
        headers: dict[str, str] = {}
        if self.password is not None:
            token = base64.b64encode(f"{self.station_id}:{self.password}".encode()).decode()
            headers["Authorization"] = f"Basic {token}"
        options: dict[str, Any] = {}
        if self._ssl_context is not None:
            options["ssl"] = self._ssl_context
        self._ws = await connect(
            self.url,
            subprotocols=[Subprotocol(self.protocol)],
            additional_headers=headers,
            compression=None,
            open_timeout=self.open_timeout,
            proxy=None,  # a station talks to its CSMS directly
            **options,
        )
        self._closed = None
        self._unsolicited = asyncio.Queue()
        self._reader = asyncio.create_task(self._read(self._ws))

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Close the WebSocket and wait for the reader and the pending answers to end."""
        if self._ws is not None:
            await self._ws.close(code, reason)
        if self._reader is not None:
            await self._reader
        handlers = list(self._handlers)
        for task in handlers:
            task.cancel()
        await asyncio.gather(*handlers, return_exceptions=True)

    async def wait_closed(self) -> int | None:
        """Wait up to ``call_timeout`` s for the CSMS to close the socket; return the close code."""
        if self._reader is not None:
            async with asyncio.timeout(self.call_timeout):
                await asyncio.shield(self._reader)
        return self.close_code

    @property
    def ws(self) -> ClientConnection:
        """The WebSocket connection (raises ``SimError`` before ``connect()``)."""
        if self._ws is None:
            raise SimError(f"station {self.station_id!r} is not connected")
        return self._ws

    @property
    def connected(self) -> bool:
        """True while the reader runs, i.e. the connection is open."""
        return self._reader is not None and not self._reader.done()

    @property
    def subprotocol(self) -> str | None:
        """The subprotocol the CSMS picked, None before connecting."""
        return None if self._ws is None else self._ws.subprotocol

    @property
    def close_code(self) -> int | None:
        """The close code of the last connection (None while open or before connecting)."""
        return None if self._ws is None else self._ws.close_code

    @property
    def close_reason(self) -> str | None:
        """The close reason of the last connection."""
        return None if self._ws is None else self._ws.close_reason

    @property
    def ocpp_version(self) -> str:
        """The subprotocol in use: the negotiated one, else the requested one."""
        return self.subprotocol or self.protocol

    # -- OCPP-J framing ------------------------------------------------------

    async def call(self, action: str, payload: JsonObject) -> JsonObject:
        """Send ``[2, uid, action, payload]``; return the CALLRESULT payload or raise ``CallError``.

        Raises ``TimeoutError`` after ``call_timeout`` seconds (wrap the call in
        ``asyncio.timeout()`` for another bound), ``ConnectionClosed`` when the
        socket closes first.
        """
        ws = self.ws
        if self._closed is not None:
            raise self._closed
        unique_id = str(uuid.uuid4())
        answer: asyncio.Future[Frame] = asyncio.get_running_loop().create_future()
        self._pending[unique_id] = answer
        started = time.perf_counter()
        try:
            await ws.send(orjson.dumps([CALL, unique_id, action, payload]).decode())
            async with asyncio.timeout(self.call_timeout):
                frame = await answer
        finally:
            self._pending.pop(unique_id, None)
        millis = (time.perf_counter() - started) * 1000
        if frame[0] == CALLRESULT:
            if len(frame) != 3 or not isinstance(frame[2], dict):
                raise MalformedFrame(f"CALLRESULT to {action} is malformed: {frame!r:.200}")
            result: JsonObject = frame[2]
            self.last_result = result
            if self.trace is not None:
                self._trace("->", action, _summary(action, payload), _compact(result), millis)
            return result
        error = CallError(
            str(frame[2]) if len(frame) > 2 else "",
            str(frame[3]) if len(frame) > 3 else "",
            frame[4] if len(frame) > 4 and isinstance(frame[4], dict) else {},
        )
        if self.trace is not None:
            self._trace("->", action, _summary(action, payload), f"CALLERROR {error}", millis)
        raise error

    async def send_raw(self, data: str | bytes) -> Frame:
        """Send any frame (text for ``str``); return the next decoded frame that answers it.

        Frames received before sending are dropped; CALLs from the CSMS keep
        going to ``on_call``; answers to pending ``call()``s keep going there.
        Raises ``MalformedFrame`` if that next frame is not a JSON array,
        ``TimeoutError`` when nothing comes within ``call_timeout`` seconds.
        """
        ws = self.ws
        while not self._unsolicited.empty():
            self._unsolicited.get_nowait()
        if self._closed is not None:
            raise self._closed
        await ws.send(data)
        async with asyncio.timeout(self.call_timeout):
            item = await self._unsolicited.get()
        if isinstance(item, BaseException):
            raise item
        return item

    async def wait_for_call(self, action: str) -> ReceivedCall:
        """Return the earliest CALL of ``action`` from the CSMS not yet returned here.

        Waits up to ``call_timeout`` seconds for it.
        """
        async with asyncio.timeout(self.call_timeout):
            while True:
                for index, received in enumerate(self.received_calls):
                    if index not in self._claimed_calls and received.action == action:
                        self._claimed_calls.add(index)
                        return received
                self._call_arrived.clear()
                await self._call_arrived.wait()

    async def on_call(self, action: str, payload: JsonObject) -> JsonObject:
        """Answer a CALL from the CSMS; override to script the station.

        Return the CALLRESULT payload, or raise ``CallError`` to answer a
        CALLERROR. Runs on its own task, so it may await ``call()`` or sleep
        (to let the CSMS time out). The default is ``default_answer()``.
        """
        return self.default_answer(action, payload)

    def default_answer(self, action: str, payload: JsonObject) -> JsonObject:
        """A compliant station's answer: mostly ``{"status": "Accepted"}``.

        Configuration (1.6 Get/ChangeConfiguration, 2.0.1 Get/SetVariables)
        reads and writes ``configuration`` / ``variables``, SendLocalList
        sets ``local_list_version`` (GetLocalListVersion reads it); a new Basic-auth
        password (1.6 ``AuthorizationKey``, 2.0.1 ``SecurityCtrlr.BasicAuthPassword``)
        becomes ``password`` for the next ``connect()``.
        """
        version = self.ocpp_version
        number_key = "listVersion" if version == OCPP16 else "versionNumber"
        if action == "SendLocalList":
            self.local_list_version = int(payload.get(number_key, 0))
            return {"status": "Accepted"}
        if action == "GetLocalListVersion":
            return {number_key: self.local_list_version}
        if version == OCPP16:
            if action == "GetConfiguration":
                return self._get_configuration(payload)
            if action == "ChangeConfiguration":
                return self._change_configuration(payload)
        else:
            if action == "GetVariables":
                return self._get_variables(payload)
            if action == "SetVariables":
                return self._set_variables(payload)
            if action == "ClearVariableMonitoring":
                ids = payload.get("id") or []
                return {"clearMonitoringResult": [{"id": i, "status": "Accepted"} for i in ids]}
            if action == "SetVariableMonitoring":
                return self._set_variable_monitoring(payload)
        fixed = _FIXED_ANSWERS.get(version, {}).get(action)
        return dict(fixed) if fixed is not None else {"status": "Accepted"}

    # -- OCPP 1.6 session ----------------------------------------------------

    async def boot(self, *, vendor: str = VENDOR, model: str = MODEL) -> JsonObject:
        """Send BootNotification (1.6); return the answer (``status``, ``interval``)."""
        payload: JsonObject = {
            "chargePointVendor": vendor[:20],
            "chargePointModel": model[:20],
            "chargePointSerialNumber": self.station_id[:25],
            "firmwareVersion": FIRMWARE,
        }
        return await self.call("BootNotification", payload)

    async def status(
        self,
        connector_id: int,
        status: str,
        error_code: str = "NoError",
        *,
        timestamp: Timestamp = None,
    ) -> JsonObject:
        """Send StatusNotification (1.6); connector 0 is the station itself."""
        payload: JsonObject = {
            "connectorId": connector_id,
            "errorCode": error_code,
            "status": status,
            "timestamp": utc_timestamp(timestamp),
        }
        return await self.call("StatusNotification", payload)

    async def authorize(self, id_tag: str) -> JsonObject:
        """Send Authorize (1.6); return the answer (``idTagInfo.status``)."""
        return await self.call("Authorize", {"idTag": id_tag})

    async def start(
        self,
        connector_id: int,
        id_tag: str,
        meter_start_wh: int,
        timestamp: Timestamp = None,
        *,
        reservation_id: int | None = None,
    ) -> int:
        """Send StartTransaction (1.6); return the transactionId (the answer is ``last_result``)."""
        payload: JsonObject = {
            "connectorId": connector_id,
            "idTag": id_tag,
            "meterStart": int(meter_start_wh),
            "timestamp": utc_timestamp(timestamp),
        }
        if reservation_id is not None:
            payload["reservationId"] = reservation_id
        result = await self.call("StartTransaction", payload)
        transaction_id = result.get("transactionId")
        if not isinstance(transaction_id, int):
            raise MalformedFrame(f"StartTransaction answer has no integer transactionId: {result}")
        self._meter_start_wh[transaction_id] = meter_start_wh
        return transaction_id

    async def meter_values(
        self,
        connector_id: int,
        transaction_id: int | None,
        energy_wh: float,
        unit: str = "Wh",
        *,
        timestamp: Timestamp = None,
        power_w: float | None = None,
        context: str = "Sample.Periodic",
    ) -> JsonObject:
        """Send MeterValues (1.6): energy register, power, current, voltage, SoC, temperature.

        ``unit`` is ``Wh`` (energy in Wh, power in W) or ``kWh`` (kWh and kW).
        Power defaults to about 11 kW; SoC follows the energy delivered since
        ``start()``. Values are strings, as 1.6 wants.
        """
        energy_unit, power_unit, scale = _units(unit)
        power = self._power(power_w)
        voltage = NOMINAL_VOLTAGE_V + self._rng.uniform(-2.0, 2.0)
        soc = self._soc(transaction_id, energy_wh)

        def sample(value: str, measurand: str, symbol: str, **extra: str) -> JsonObject:
            return {
                "value": value,
                "context": context,
                "format": "Raw",
                "measurand": measurand,
                "unit": symbol,
                **extra,
            }

        sampled = [
            sample(
                _number(energy_wh / scale, 3 if scale > 1 else 1),
                "Energy.Active.Import.Register",
                energy_unit,
                location="Outlet",
            ),
            sample(
                _number(power / scale, 3 if scale > 1 else 1),
                "Power.Active.Import",
                power_unit,
                location="Outlet",
            ),
            sample(
                f"{power / 3 / voltage:.1f}", "Current.Import", "A", phase="L1", location="Outlet"
            ),
            sample(f"{voltage:.1f}", "Voltage", "V", phase="L1-N", location="Outlet"),
            sample(f"{soc:.0f}", "SoC", "Percent", location="EV"),
            sample(
                f"{28 + self._rng.uniform(-3.0, 3.0):.1f}",
                "Temperature",
                "Celsius",
                location="Body",
            ),
        ]
        payload: JsonObject = {
            "connectorId": connector_id,
            "meterValue": [{"timestamp": utc_timestamp(timestamp), "sampledValue": sampled}],
        }
        if transaction_id is not None:
            payload["transactionId"] = transaction_id
        return await self.call("MeterValues", payload)

    async def stop(
        self,
        transaction_id: int,
        meter_stop_wh: int,
        id_tag: str | None = None,
        reason: str | None = None,
        *,
        timestamp: Timestamp = None,
    ) -> JsonObject:
        """Send StopTransaction (1.6); without ``reason`` the spec's default is ``Local``."""
        payload: JsonObject = {
            "transactionId": transaction_id,
            "meterStop": int(meter_stop_wh),
            "timestamp": utc_timestamp(timestamp),
        }
        if id_tag is not None:
            payload["idTag"] = id_tag
        if reason is not None:
            payload["reason"] = reason
        return await self.call("StopTransaction", payload)

    async def heartbeat(self) -> JsonObject:
        """Send Heartbeat (both versions: the payload is ``{}``); return ``currentTime``."""
        return await self.call("Heartbeat", {})

    # -- OCPP 2.0.1 session --------------------------------------------------

    async def boot201(
        self, *, reason: str = "PowerUp", vendor: str = VENDOR, model: str = MODEL
    ) -> JsonObject:
        """Send BootNotification (2.0.1); return the answer (``status``, ``interval``)."""
        payload: JsonObject = {
            "reason": reason,
            "chargingStation": {
                "model": model[:20],
                "vendorName": vendor[:50],
                "serialNumber": self.station_id[:25],
                "firmwareVersion": FIRMWARE,
            },
        }
        return await self.call("BootNotification", payload)

    async def status201(
        self, evse_id: int, connector_id: int, status: str, *, timestamp: Timestamp = None
    ) -> JsonObject:
        """Send StatusNotification (2.0.1): ``Available``, ``Occupied``, ``Unavailable``..."""
        payload: JsonObject = {
            "timestamp": utc_timestamp(timestamp),
            "connectorStatus": status,
            "evseId": evse_id,
            "connectorId": connector_id,
        }
        return await self.call("StatusNotification", payload)

    async def authorize201(self, id_token: str, type: str = "ISO14443") -> JsonObject:
        """Send Authorize (2.0.1); return the answer (``idTokenInfo.status``)."""
        return await self.call("Authorize", {"idToken": {"idToken": id_token, "type": type}})

    async def transaction_event(
        self,
        event_type: str,
        transaction_id: str,
        seq_no: int,
        trigger_reason: str,
        *,
        evse_id: int = 1,
        connector_id: int = 1,
        energy_wh: float | None = None,
        id_token: str | None = None,
        id_token_type: str = "ISO14443",  # noqa: S107 - a token *type*, no secret
        offline: bool = False,
        timestamp: Timestamp = None,
        stopped_reason: str | None = None,
        charging_state: str | None = None,
    ) -> JsonObject:
        """Send TransactionEvent (2.0.1): ``Started``, ``Updated`` or ``Ended``.

        With ``energy_wh`` it carries one energy register sample (context
        ``Transaction.Begin`` / ``Sample.Periodic`` / ``Transaction.End``).
        """
        info: JsonObject = {"transactionId": transaction_id}
        if charging_state is not None:
            info["chargingState"] = charging_state
        if stopped_reason is not None:
            info["stoppedReason"] = stopped_reason
        moment = utc_timestamp(timestamp)
        payload: JsonObject = {
            "eventType": event_type,
            "timestamp": moment,
            "triggerReason": trigger_reason,
            "seqNo": seq_no,
            "transactionInfo": info,
            "evse": {"id": evse_id, "connectorId": connector_id},
        }
        if offline:
            payload["offline"] = True
        if id_token is not None:
            payload["idToken"] = {"idToken": id_token, "type": id_token_type}
        if energy_wh is not None:
            if event_type == "Started":
                self._meter_start_wh[transaction_id] = energy_wh
            context = {"Started": "Transaction.Begin", "Ended": "Transaction.End"}.get(
                event_type, "Sample.Periodic"
            )
            sample: JsonObject = {
                "value": energy_wh,
                "context": context,
                "measurand": "Energy.Active.Import.Register",
                "location": "Outlet",
                "unitOfMeasure": {"unit": "Wh"},
            }
            payload["meterValue"] = [{"timestamp": moment, "sampledValue": [sample]}]
        return await self.call("TransactionEvent", payload)

    async def meter_values201(
        self,
        evse_id: int,
        energy_wh: float,
        unit: str = "Wh",
        *,
        transaction_id: str | None = None,
        timestamp: Timestamp = None,
        power_w: float | None = None,
    ) -> JsonObject:
        """Send MeterValues (2.0.1): energy register, power, current, voltage, SoC, frequency.

        ``unit`` as in ``meter_values()``; ``transaction_id`` only feeds the SoC.
        Values are numbers, as 2.0.1 wants.
        """
        energy_unit, power_unit, scale = _units(unit)
        power = self._power(power_w)
        voltage = NOMINAL_VOLTAGE_V + self._rng.uniform(-2.0, 2.0)

        def sample(value: float, measurand: str, symbol: str, **extra: str) -> JsonObject:
            return {
                "value": round(value, 3),
                "context": "Sample.Periodic",
                "measurand": measurand,
                "location": "Outlet",
                "unitOfMeasure": {"unit": symbol},
                **extra,
            }

        sampled = [
            sample(energy_wh / scale, "Energy.Active.Import.Register", energy_unit),
            sample(power / scale, "Power.Active.Import", power_unit),
            sample(power / 3 / voltage, "Current.Import", "A", phase="L1"),
            sample(voltage, "Voltage", "V", phase="L1-N"),
            sample(self._soc(transaction_id, energy_wh), "SoC", "Percent", location="EV"),
            sample(50 + self._rng.uniform(-0.05, 0.05), "Frequency", "Hz"),
        ]
        payload: JsonObject = {
            "evseId": evse_id,
            "meterValue": [{"timestamp": utc_timestamp(timestamp), "sampledValue": sampled}],
        }
        return await self.call("MeterValues", payload)

    # -- internals -----------------------------------------------------------

    async def _read(self, ws: ClientConnection) -> None:
        """Route every incoming frame until the connection closes."""
        while True:
            try:
                message = await ws.recv()
            except ConnectionClosed as exc:
                self._closed = exc
                for waiter in self._pending.values():
                    if not waiter.done():
                        waiter.set_exception(exc)
                self._unsolicited.put_nowait(exc)
                return
            self._dispatch(ws, message)

    def _dispatch(self, ws: ClientConnection, message: str | bytes) -> None:
        """CALLs go to ``on_call``, answers to their ``call()``, anything else to ``send_raw()``."""
        try:
            frame = orjson.loads(message)
        except orjson.JSONDecodeError:
            self._unsolicited.put_nowait(MalformedFrame(f"frame is not JSON: {message!r:.200}"))
            return
        if not isinstance(frame, list) or not frame:
            self._unsolicited.put_nowait(MalformedFrame(f"frame is not an array: {frame!r:.200}"))
            return
        kind = frame[0]
        if (
            kind == CALL
            and len(frame) == 4
            and isinstance(frame[1], str)
            and isinstance(frame[2], str)
            and isinstance(frame[3], dict)
        ):
            self.received_calls.append(ReceivedCall(frame[2], frame[3]))
            self._call_arrived.set()
            task = asyncio.create_task(self._answer(ws, frame[1], frame[2], frame[3]))
            self._handlers.add(task)
            task.add_done_callback(self._handlers.discard)
            return
        if kind in (CALLRESULT, CALLERROR) and len(frame) >= 2 and isinstance(frame[1], str):
            waiter = self._pending.pop(frame[1], None)
            if waiter is not None and not waiter.done():
                waiter.set_result(frame)
                return
        self._unsolicited.put_nowait(frame)

    async def _answer(
        self, ws: ClientConnection, unique_id: str, action: str, payload: JsonObject
    ) -> None:
        """Run ``on_call`` for one CALL from the CSMS and send its answer."""
        started = time.perf_counter()
        reply: Frame
        try:
            result = await self.on_call(action, payload)
        except CallError as exc:
            reply = [CALLERROR, unique_id, exc.code, exc.description, exc.details]
            outcome = f"CALLERROR {exc}"
        except Exception as exc:  # a broken hook answers like a broken station
            self.handler_errors.append(exc)
            reply = [CALLERROR, unique_id, "InternalError", f"{type(exc).__name__}: {exc}", {}]
            outcome = f"CALLERROR InternalError ({exc!r})"
        else:
            reply = [CALLRESULT, unique_id, result]
            outcome = _compact(result)
        if self.trace is not None:
            millis = (time.perf_counter() - started) * 1000
            self._trace("<-", action, _compact(payload), outcome, millis)
        with contextlib.suppress(ConnectionClosed):  # the CSMS hung up: nobody to answer
            await ws.send(orjson.dumps(reply).decode())

    def _trace(self, arrow: str, action: str, request: str, answer: str, millis: float) -> None:
        """One line per CALL and its answer: ``->`` sent by the station, ``<-`` by the CSMS."""
        if self.trace is not None:
            line = f"{self.station_id:<12} {arrow} {action:<26} {request}  => {answer}"
            self.trace(f"{line}  ({millis:.0f} ms)")

    def _power(self, power_w: float | None) -> float:
        return NOMINAL_POWER_W + self._rng.uniform(-300.0, 300.0) if power_w is None else power_w

    def _soc(self, transaction_id: int | str | None, energy_wh: float) -> float:
        start = self._meter_start_wh.get(transaction_id) if transaction_id is not None else None
        delivered = 0.0 if start is None else max(0.0, energy_wh - start)
        return min(100.0, START_SOC_PERCENT + delivered / BATTERY_WH * 100)

    def _get_configuration(self, payload: JsonObject) -> JsonObject:
        wanted = payload.get("key") or list(self.configuration)
        known = [
            {
                "key": key,
                "readonly": key in _READONLY_CONFIGURATION,
                "value": self.configuration[key],
            }
            for key in wanted
            if key in self.configuration
        ]
        unknown = [key for key in wanted if key not in self.configuration]
        answer: JsonObject = {"configurationKey": known}
        if unknown:
            answer["unknownKey"] = unknown
        return answer

    def _change_configuration(self, payload: JsonObject) -> JsonObject:
        key, value = str(payload.get("key", "")), str(payload.get("value", ""))
        if key in _READONLY_CONFIGURATION:
            return {"status": "Rejected"}
        if key == "AuthorizationKey":  # write-only: the Basic-auth password
            self.password = value
        else:
            self.configuration[key] = value
        return {"status": "Accepted"}

    def _get_variables(self, payload: JsonObject) -> JsonObject:
        results = []
        for item in payload.get("getVariableData") or []:
            component, variable = item.get("component", {}), item.get("variable", {})
            value = self.variables.get((component.get("name"), variable.get("name")))
            result: JsonObject = {"component": component, "variable": variable}
            if value is None:
                result["attributeStatus"] = "UnknownVariable"
            else:
                result.update(attributeStatus="Accepted", attributeValue=value)
            if "attributeType" in item:
                result["attributeType"] = item["attributeType"]
            results.append(result)
        return {"getVariableResult": results}

    def _set_variables(self, payload: JsonObject) -> JsonObject:
        results = []
        for item in payload.get("setVariableData") or []:
            component, variable = item.get("component", {}), item.get("variable", {})
            name = (str(component.get("name")), str(variable.get("name")))
            if name == ("SecurityCtrlr", "BasicAuthPassword"):  # write-only
                self.password = str(item.get("attributeValue", ""))
            else:
                self.variables[name] = str(item.get("attributeValue", ""))
            result: JsonObject = {
                "attributeStatus": "Accepted",
                "component": component,
                "variable": variable,
            }
            if "attributeType" in item:
                result["attributeType"] = item["attributeType"]
            results.append(result)
        return {"setVariableResult": results}

    def _set_variable_monitoring(self, payload: JsonObject) -> JsonObject:
        results = []
        for number, item in enumerate(payload.get("setMonitoringData") or [], start=1):
            results.append(
                {
                    "id": item.get("id", number),
                    "status": "Accepted",
                    "type": item.get("type"),
                    "severity": item.get("severity"),
                    "component": item.get("component"),
                    "variable": item.get("variable"),
                }
            )
        return {"setMonitoringResult": results}


def _units(unit: str) -> tuple[str, str, float]:
    """Energy unit, power unit and divisor from Wh/W for ``unit`` (``Wh`` or ``kWh``)."""
    if unit == "Wh":
        return "Wh", "W", 1.0
    if unit == "kWh":
        return "kWh", "kW", 1000.0
    raise ValueError(f"cannot send meter values in {unit!r}: use 'Wh' or 'kWh'")


def _number(value: float, decimals: int) -> str:
    """Format a reading without trailing zeros: 1234.0 -> '1234', 1.2340 -> '1.234'."""
    text = f"{value:.{decimals}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def _compact(value: Any, limit: int = 110) -> str:
    text = orjson.dumps(value).decode()
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _summary(action: str, payload: JsonObject) -> str:
    """A short, readable digest of a CALL the station sends (any payload, even a broken one)."""
    try:
        return _known_summary(action, payload)
    except (LookupError, TypeError, AttributeError):
        return _compact(payload)


def _known_summary(action: str, payload: JsonObject) -> str:
    if action == "MeterValues":
        samples = payload["meterValue"][0]["sampledValue"]
        energy = samples[0]
        unit = energy.get("unit") or energy.get("unitOfMeasure", {}).get("unit", "Wh")
        where = (
            f"tx={payload['transactionId']} " if "transactionId" in payload else ""
        ) + f"connector={payload.get('connectorId', payload.get('evseId'))}"
        return f"{where} energy={energy['value']} {unit} (+{len(samples) - 1} samples)"
    if action == "TransactionEvent":
        energy = ""
        if "meterValue" in payload:
            energy = f" energy={payload['meterValue'][0]['sampledValue'][0]['value']} Wh"
        tx = payload["transactionInfo"]["transactionId"]
        return f"{payload['eventType']} seq={payload['seqNo']} tx={tx}{energy}"
    if action == "BootNotification":
        station = payload.get("chargingStation", payload)
        vendor = station.get("vendorName", station.get("chargePointVendor"))
        model = station.get("model", station.get("chargePointModel"))
        return f"vendor={vendor} model={model}"
    return " ".join(
        f"{key}={value if isinstance(value, str | int | float) else _compact(value, 40)}"
        for key, value in payload.items()
        if key != "timestamp"
    )


# -- the scripted sessions of the command line --------------------------------


class SessionFailed(SimError):
    """A scripted session could not go on (a refusal, not a transport error)."""


def _expect(answer: JsonObject, path: tuple[str, ...], wanted: str, what: str, hint: str) -> None:
    value: Any = answer
    for key in path:
        value = value.get(key) if isinstance(value, dict) else None
    if value != wanted:
        raise SessionFailed(f"{what} answered {value!r}, not {wanted!r}; {hint}")


async def run_session(station: SimStation, options: argparse.Namespace) -> None:
    """Boot, Available, authorize, start, N meter values, stop, Available.

    ``options`` carries ``connector``, ``id_tag``, ``meter_values``, ``interval``
    and ``energy_step`` (Wh per meter value). Raises ``SessionFailed`` on a refusal.
    """
    if station.ocpp_version == OCPP16:
        await _session16(station, options)
    else:
        await _session201(station, options)


def _hints(station: SimStation, token: str) -> tuple[str, str]:
    return (
        f"register it: csms stations add {station.station_id}",
        f"register it as Accepted: csms tokens add {token}",
    )


def _meter_start(station: SimStation) -> int:
    """A believable lifetime register to start from, the same for the same station."""
    return random.Random(station.station_id).randrange(100_000, 5_000_000)


async def _session16(station: SimStation, options: argparse.Namespace) -> None:
    connector: int = options.connector
    token: str = options.id_tag
    station_hint, token_hint = _hints(station, token)
    _expect(await station.boot(), ("status",), "Accepted", "BootNotification", station_hint)
    await station.status(connector, "Available")
    answer = await station.authorize(token)
    _expect(answer, ("idTagInfo", "status"), "Accepted", "Authorize", token_hint)
    meter = _meter_start(station)
    transaction_id = await station.start(connector, token, meter)
    answer = station.last_result or {}
    _expect(answer, ("idTagInfo", "status"), "Accepted", "StartTransaction", token_hint)
    for _ in range(options.meter_values):
        await asyncio.sleep(options.interval)
        meter += round(options.energy_step)
        await station.meter_values(connector, transaction_id, meter)
    await station.stop(transaction_id, meter, id_tag=token)
    await station.status(connector, "Available")


async def _session201(station: SimStation, options: argparse.Namespace) -> None:
    connector: int = options.connector
    token: str = options.id_tag
    station_hint, token_hint = _hints(station, token)
    _expect(await station.boot201(), ("status",), "Accepted", "BootNotification", station_hint)
    await station.status201(connector, connector, "Available")
    answer = await station.authorize201(token)
    _expect(answer, ("idTokenInfo", "status"), "Accepted", "Authorize", token_hint)
    meter = _meter_start(station)
    transaction = new_transaction_id()

    async def event(kind: str, seq_no: int, trigger: str, **fields: Any) -> JsonObject:
        return await station.transaction_event(
            kind, transaction, seq_no, trigger, evse_id=connector, connector_id=connector,
            energy_wh=meter, **fields,
        )  # fmt: skip

    await event("Started", 0, "Authorized", id_token=token, charging_state="Charging")
    for seq_no in range(1, options.meter_values + 1):
        await asyncio.sleep(options.interval)
        meter += round(options.energy_step)
        await event("Updated", seq_no, "MeterValuePeriodic")
    last = options.meter_values + 1
    await event(
        "Ended", last, "StopAuthorized",
        id_token=token, charging_state="EVConnected", stopped_reason="Local",
    )  # fmt: skip
    await station.status201(connector, connector, "Available")


async def _run_station(station_id: str, options: argparse.Namespace) -> bool:
    """One station's whole session; True when it went through. Never raises for a peer's no."""
    station = SimStation(
        options.url,
        station_id,
        protocol=options.protocol,
        password=options.password,
        call_timeout=options.timeout,
        trace=print,
    )
    try:
        async with station:
            await run_session(station, options)
    except InvalidStatus as exc:
        status = exc.response.status_code
        hint = {
            400: f"bad station id, or the server does not speak {options.protocol}",
            401: "wrong or missing password (--password)",
            404: f"unknown: csms stations add {station_id} (or CSMS_UNKNOWN_STATIONS=accept)",
        }.get(status, "the server refused the handshake")
        print(f"{station_id:<12} FAILED  handshake refused with HTTP {status}: {hint}")
    except (SessionFailed, CallError, MalformedFrame) as exc:
        print(f"{station_id:<12} FAILED  {exc}")
    except TimeoutError:
        print(f"{station_id:<12} FAILED  no answer within {options.timeout:g} s")
    except (OSError, WebSocketException) as exc:
        print(f"{station_id:<12} FAILED  cannot talk to {station.url}: {exc}")
    else:
        print(f"{station_id:<12} OK      session complete")
        return True
    return False


def station_ids(options: argparse.Namespace) -> list[str]:
    """``--id`` as given; otherwise ``--stations`` ids PREFIX001, PREFIX002..."""
    if options.ids:
        return list(dict.fromkeys(options.ids))
    return [f"{options.id_prefix}{number:03d}" for number in range(1, options.stations + 1)]


async def _run(options: argparse.Namespace) -> int:
    ids = station_ids(options)
    async with asyncio.TaskGroup() as group:
        tasks = [group.create_task(_run_station(station_id, options)) for station_id in ids]
    ok = sum(task.result() for task in tasks)
    print(f"sessions: {ok} ok, {len(ids) - ok} failed")
    return 0 if ok == len(ids) else 1


# -- self-check against the official schemas ----------------------------------

# The CALLs a CSMS sends to a station, per version; default_answer() must fit each one.
# fmt: off
_CSMS_ACTIONS: dict[str, tuple[str, ...]] = {
    OCPP16: (
        "CancelReservation", "ChangeAvailability", "ChangeConfiguration", "ClearCache",
        "ClearChargingProfile", "DataTransfer", "GetCompositeSchedule", "GetConfiguration",
        "GetDiagnostics", "GetLocalListVersion", "RemoteStartTransaction",
        "RemoteStopTransaction", "ReserveNow", "Reset", "SendLocalList", "SetChargingProfile",
        "TriggerMessage", "UnlockConnector", "UpdateFirmware",
        # the security extension
        "CertificateSigned", "DeleteCertificate", "ExtendedTriggerMessage",
        "GetInstalledCertificateIds", "GetLog", "InstallCertificate", "SignedUpdateFirmware",
    ),
    OCPP201: (
        "CancelReservation", "CertificateSigned", "ChangeAvailability", "ClearCache",
        "ClearChargingProfile", "ClearDisplayMessage", "ClearVariableMonitoring", "CostUpdated",
        "CustomerInformation", "DataTransfer", "DeleteCertificate", "GetBaseReport",
        "GetChargingProfiles", "GetCompositeSchedule", "GetDisplayMessages",
        "GetInstalledCertificateIds", "GetLocalListVersion", "GetLog", "GetMonitoringReport",
        "GetReport", "GetTransactionStatus", "GetVariables", "InstallCertificate",
        "PublishFirmware", "RequestStartTransaction", "RequestStopTransaction", "ReserveNow",
        "Reset", "SendLocalList", "SetChargingProfile", "SetDisplayMessage",
        "SetMonitoringBase", "SetMonitoringLevel", "SetNetworkProfile", "SetVariableMonitoring",
        "SetVariables", "TriggerMessage", "UnlockConnector", "UnpublishFirmware",
        "UpdateFirmware",
    ),
}
# fmt: on

# Requests whose answer echoes them, to check default_answer() on real content.
_SAMPLE_REQUESTS: dict[str, dict[str, JsonObject]] = {
    OCPP16: {
        "GetConfiguration": {"key": ["HeartbeatInterval", "NoSuchKey"]},
        "ChangeConfiguration": {"key": "AuthorizationKey", "value": "0123456789abcdef"},
    },
    OCPP201: {
        "GetVariables": {
            "getVariableData": [
                {"component": {"name": "OCPPCommCtrlr"}, "variable": {"name": "HeartbeatInterval"}},
                {
                    "component": {"name": "Nope"},
                    "variable": {"name": "Nope"},
                    "attributeType": "Actual",
                },
            ]
        },
        "SetVariables": {
            "setVariableData": [
                {
                    "attributeValue": "s3cret-s3cret-s3cret",
                    "component": {"name": "SecurityCtrlr"},
                    "variable": {"name": "BasicAuthPassword"},
                }
            ]
        },
        "ClearVariableMonitoring": {"id": [1, 2]},
        "SetVariableMonitoring": {
            "setMonitoringData": [
                {
                    "value": 1.0,
                    "type": "Delta",
                    "severity": 5,
                    "component": {"name": "EVSE", "evse": {"id": 1}},
                    "variable": {"name": "Power"},
                }
            ]
        },
    },
}


class _SchemaCheck:
    """Validates payloads against the JSON schemas shipped in the ``ocpp`` package."""

    def __init__(self) -> None:
        # jsonschema is a dev dependency and ships no type hints: import it late, as Any.
        self._jsonschema: Any = importlib.import_module("jsonschema")
        self.checked = 0

    def validate(self, version: str, action: str, payload: JsonObject, *, response: bool) -> None:
        folder = "v16" if version == OCPP16 else "v201"
        suffix = "Response" if response else ("" if version == OCPP16 else "Request")
        resource = importlib.resources.files("ocpp") / folder / "schemas" / f"{action}{suffix}.json"
        schema = orjson.loads(resource.read_bytes())
        validator_class = self._jsonschema.validators.validator_for(schema)
        validator = validator_class(schema, format_checker=validator_class.FORMAT_CHECKER)
        errors = sorted(validator.iter_errors(payload), key=str)
        kind = "answer" if response else "request"
        if errors:
            raise AssertionError(f"{version} {action} {kind} is invalid: {errors[0].message}")
        for stamp in _timestamps(payload):  # jsonschema checks "date-time" only with extras
            moment = datetime.fromisoformat(stamp)
            if moment.utcoffset() is None or not stamp.endswith("Z"):
                raise AssertionError(f"{version} {action} {kind}: {stamp!r} is not UTC")
        self.checked += 1


def _timestamps(value: Any) -> list[str]:
    """Every ``timestamp`` string anywhere in a payload."""
    if isinstance(value, dict):
        found = [item for key, item in value.items() if key == "timestamp"]
        return found + [stamp for item in value.values() for stamp in _timestamps(item)]
    if isinstance(value, list):
        return [stamp for item in value for stamp in _timestamps(item)]
    return []


class _SchemaCheckStation(SimStation):
    """A station without a socket: ``call()`` validates the request and fakes a valid answer."""

    def __init__(self, protocol: str, check: _SchemaCheck) -> None:
        super().__init__("ws://selfcheck.invalid/ocpp", "SELFCHECK-1", protocol=protocol)
        self._check = check
        self._next_transaction = 0

    async def call(self, action: str, payload: JsonObject) -> JsonObject:
        version = self.ocpp_version
        self._check.validate(version, action, payload, response=False)
        now = utc_timestamp()
        accepted = {"status": "Accepted"}
        answers: dict[str, JsonObject] = {
            "BootNotification": {"status": "Accepted", "currentTime": now, "interval": 300},
            "Heartbeat": {"currentTime": now},
            "Authorize": {"idTagInfo": accepted}
            if version == OCPP16
            else {"idTokenInfo": accepted},
        }
        if action == "StartTransaction":
            self._next_transaction += 1
            answers[action] = {"transactionId": self._next_transaction, "idTagInfo": accepted}
        answer = answers.get(action, {})
        self._check.validate(version, action, answer, response=True)
        self.last_result = answer
        return answer


async def _exercise(check: _SchemaCheck) -> None:
    """Build every payload the simulator can send and every default answer it gives."""
    for protocol in (OCPP16, OCPP201):
        for energy_step in (0.0, 1234.5):
            options = argparse.Namespace(
                connector=1,
                id_tag="04A1B2C3",
                meter_values=3,
                interval=0.0,
                energy_step=energy_step,
            )
            await run_session(_SchemaCheckStation(protocol, check), options)
    station16 = _SchemaCheckStation(OCPP16, check)
    await station16.heartbeat()
    await station16.status(0, "Faulted", "GroundFailure", timestamp=datetime(2024, 5, 1, 12, 0))
    transaction_id = await station16.start(2, "TAG", 0, "2024-05-01T12:00:00Z", reservation_id=7)
    await station16.meter_values(2, transaction_id, 12_345.6, "kWh", context="Transaction.End")
    await station16.meter_values(2, None, 99_999, power_w=7400.0)
    await station16.stop(transaction_id, 20_000, "TAG", "EVDisconnected")
    station201 = _SchemaCheckStation(OCPP201, check)
    await station201.heartbeat()
    await station201.boot201(reason="RemoteReset")
    await station201.authorize201("E1234567", type="eMAID")
    await station201.status201(0, 0, "Unavailable")
    transaction = new_transaction_id()
    await station201.transaction_event("Started", transaction, 0, "CablePluggedIn", offline=True)
    await station201.transaction_event(
        "Updated", transaction, 1, "ChargingStateChanged", charging_state="SuspendedEV"
    )
    await station201.meter_values201(1, 5000.0, "kWh", transaction_id=transaction)
    await station201.transaction_event(
        "Ended", transaction, 2, "EVDeparted", energy_wh=6000, stopped_reason="EVDisconnected"
    )
    for station in (station16, station201):
        version = station.ocpp_version
        for action in _CSMS_ACTIONS[version]:
            request = _SAMPLE_REQUESTS[version].get(action)
            if request is not None:
                check.validate(version, action, request, response=False)
            answer = await station.on_call(action, request or {})
            check.validate(version, action, answer, response=True)
    rotated = (
        _SAMPLE_REQUESTS[OCPP16]["ChangeConfiguration"]["value"],
        _SAMPLE_REQUESTS[OCPP201]["SetVariables"]["setVariableData"][0]["attributeValue"],
    )
    if (station16.password, station201.password) != rotated:
        raise AssertionError("a password sent by the CSMS was not taken over")


def _selfcheck() -> int:
    """Validate every payload and default answer against the official schemas; 0 when all fit."""
    check = _SchemaCheck()
    try:
        asyncio.run(_exercise(check))
    except AssertionError as exc:
        print(f"selfcheck FAILED: {exc}", file=sys.stderr)
        return 1
    print(f"selfcheck ok: {check.checked} payloads valid against the ocpp package's schemas")
    return 0


# -- command line ------------------------------------------------------------


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def _non_negative(text: str) -> float:
    value = float(text)
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be zero or more, not {text}")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Run scripted OCPP charging sessions against a CSMS, one per station, "
        "concurrently. Exits 0 only when every session went through.",
    )
    parser.add_argument("--url", default="ws://127.0.0.1:9000/ocpp", help="%(default)s")
    parser.add_argument("--stations", type=_positive_int, default=3, help="%(default)s")
    parser.add_argument("--protocol", choices=[OCPP16, OCPP201], default=OCPP16)
    parser.add_argument(
        "--id-prefix", default="SIM-", help="station ids: PREFIX001... (%(default)s)"
    )
    parser.add_argument(
        "--id",
        dest="ids",
        action="append",
        metavar="STATION_ID",
        help="play exactly this station (repeatable); replaces --stations and --id-prefix",
    )
    parser.add_argument(
        "--id-tag", default="04A1B2C3", help="id token to charge with (%(default)s)"
    )
    parser.add_argument("--meter-values", type=int, default=5, help="per session (%(default)s)")
    parser.add_argument("--interval", type=_non_negative, default=1.0, help="seconds (%(default)s)")
    parser.add_argument(
        "--energy-step",
        type=_non_negative,
        default=250.0,
        help="Wh added per meter value (%(default)s)",
    )
    parser.add_argument("--connector", type=_positive_int, default=1, help="%(default)s")
    parser.add_argument("--password", help="Basic-auth password (security profile 1)")
    parser.add_argument(
        "--timeout",
        type=_non_negative,
        default=30.0,
        help="seconds to wait per answer (%(default)s)",
    )
    parser.add_argument(
        "--selfcheck",
        action="store_true",
        help="validate every payload offline against the schemas",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command line; return the exit code."""
    options = _parser().parse_args(argv)
    if options.selfcheck:
        return _selfcheck()
    if options.meter_values < 0:
        _parser().error("--meter-values must be zero or more")
    if hasattr(signal, "SIGPIPE"):  # `simulate.py | head` ends quietly, like other tools
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    try:
        return asyncio.run(_run(options))
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
