#!/usr/bin/env python3
"""Load generator for OCPP-J central systems: a benchmark tool, not part of the product.

Simulates ``--stations`` charging stations, one WebSocket each, spread over
``--workers`` processes so that the generator is not the bottleneck. Every
station connects, sends BootNotification, runs its workload's setup (a
transaction where the workload needs one), then sends CALLs with at most one
outstanding: as fast as the answers come (closed loop, the default) or at a
total ``--rate`` of CALLs/s (open loop). Only answers that arrive inside the
measurement window (``--duration`` s after ``--warmup`` s) are counted::

    python scripts/loadgen.py --url ws://127.0.0.1:9000/ocpp --workload heartbeat16 \\
        --stations 1000 --duration 10 --server-pid "$(pgrep -f 'csms serve')"

Workloads:

    heartbeat16          1.6 Heartbeat
    metervalues16        1.6 MeterValues, 6 sampled values, in a transaction it started
    transactionevent201  2.0.1 TransactionEvent Updated, 6 sampled values, after a Started
    idle                 connect and boot, then hold the connections (RSS per station)
    storm                all stations connect and boot at once (time until all booted)
    mixed                a fleet of both versions: meter values, heartbeats, status,
                         authorisations, transactions started and stopped

It reports answered CALLs/s, round-trip percentiles, errors (CALLERRORs by
code, timeouts, connection failures), connect and boot times, its own CPU,
and, with ``--server-pid``, the server's CPU and RSS read from /proc; with
``--outbox-dsn`` also how long the server's outbox took to deliver the
window's events. Loopback URLs only; every run ends by itself.

The stations are lean on purpose: websockets' sans-I/O client protocol under a
plain asyncio.Protocol, answers handled in callbacks, no task per CALL.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import json
import math
import multiprocessing
import multiprocessing.connection
import os
import random
import resource
import secrets
import sys
import time
from array import array
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, cast
from urllib.parse import quote, urlsplit

import orjson
from websockets.client import ClientProtocol
from websockets.frames import Frame, Opcode
from websockets.http11 import Response
from websockets.protocol import State
from websockets.typing import Subprotocol
from websockets.uri import parse_uri

JsonObject = dict[str, Any]

OCPP16 = "ocpp1.6"
OCPP201 = "ocpp2.0.1"
CALL, CALLRESULT, CALLERROR = 2, 3, 4

MAX_STATIONS = 50_000
MAX_DURATION = 600.0
MAX_RATE = 200_000.0
# Stations connect from several loopback source addresses, so that runs in a row
# never run out of ephemeral ports (19,000 stations twice is more than one
# address's 28,000 ports while TIME_WAIT lasts).
SOURCE_ADDRESSES = 32

WORKLOADS = ("heartbeat16", "metervalues16", "transactionevent201", "idle", "storm", "mixed")
# Workloads that fix the protocol; the others take --ocpp.
FIXED_PROTOCOL = {
    "heartbeat16": OCPP16,
    "metervalues16": OCPP16,
    "transactionevent201": OCPP201,
}
# The mixed workload's CALLs, by weight. "Transaction" starts a transaction
# when the station has none, else ends it; "MeterValues" is a 2.0.1
# TransactionEvent Updated inside a transaction.
MIX = (
    ("MeterValues", 55),
    ("Heartbeat", 15),
    ("StatusNotification", 10),
    ("Authorize", 10),
    ("Transaction", 10),
)


@dataclass(frozen=True, slots=True)
class Config:
    """One run, as the parent hands it to every worker."""

    url: str
    workload: str
    stations: int
    workers: int
    duration: float
    warmup: float
    rate: float  # total CALLs/s; 0 = closed loop
    ocpp: str  # 1.6, 2.0.1 or both (idle, storm, mixed)
    id_prefix: str
    id_tag: str
    call_timeout: float
    connect_timeout: float
    connect_concurrency: int  # per worker; a storm ignores it
    uvloop: bool
    nonce: str  # keeps message ids unique across runs (servers cache replies by id)
    wait_quiet: float = 0.0  # wait up to this long for an idle machine before starting
    retries: int = 0  # attempts a station makes after a failed connect or boot
    relay_pids: tuple[int, ...] = ()  # external relay processes, measured like the services
    answer_calls: bool = False  # answer the CSMS's CALLs with {"status": "Accepted"}

    def protocol_of(self, index: int) -> str:
        fixed = FIXED_PROTOCOL.get(self.workload)
        if fixed is not None:
            return fixed
        if self.ocpp == "both":
            return OCPP16 if index % 2 == 0 else OCPP201
        return OCPP201 if self.ocpp == "2.0.1" else OCPP16

    @property
    def sends_calls(self) -> bool:
        return self.workload not in ("idle", "storm")


@dataclass(slots=True)
class WorkerResult:
    """What one worker measured; the parent adds them up."""

    connected: int = 0
    booted: int = 0
    connect_failures: dict[str, int] = field(default_factory=dict)
    retries: dict[str, int] = field(default_factory=dict)  # by the reason that caused them
    connect_s: array[float] = field(default_factory=lambda: array("d"))
    booted_s: array[float] = field(default_factory=lambda: array("d"))
    answered: int = 0
    by_action: dict[str, int] = field(default_factory=dict)
    call_errors: dict[str, int] = field(default_factory=dict)
    timeouts: int = 0
    late_sends: int = 0
    stale_answers: int = 0
    server_calls: int = 0
    disconnects: int = 0
    rtt_s: array[float] = field(default_factory=lambda: array("d"))
    rtt_by_action: dict[str, array[float]] = field(default_factory=dict)
    cpu_s: float = 0.0


def utc_now_text() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class Clock:
    """The current timestamp as OCPP text, recomputed at most every 100 ms."""

    def __init__(self) -> None:
        self._at = 0.0
        self._text = ""

    def text(self, now: float) -> str:
        if now - self._at >= 0.1:
            self._at = now
            self._text = utc_now_text()
        return self._text


class Station(asyncio.Protocol):
    """One station: a WebSocket client protocol driven by callbacks."""

    def __init__(self, worker: Worker, index: int, url: str = "") -> None:
        config = worker.config
        self.worker = worker
        self.index = index
        self.station_id = f"{config.id_prefix}{index:06d}"
        self.protocol = config.protocol_of(index)
        url = (url or config.url).rstrip("/") + "/" + quote(self.station_id, safe="")
        self.ws = ClientProtocol(parse_uri(url), subprotocols=[Subprotocol(self.protocol)])
        self.transport: asyncio.Transport | None = None
        self.opened: asyncio.Future[None] = worker.loop.create_future()
        self.closed: asyncio.Future[None] = worker.loop.create_future()
        self.rng = random.Random(index)
        self.sequence = 0
        # The one outstanding CALL.
        self.pending_id: str | None = None
        self.pending_action = ""
        self.pending_future: asyncio.Future[list[Any]] | None = None
        self.sent_at = 0.0
        self.owed = 0  # open loop: sends due while a CALL was outstanding
        self.retry_after = 0.0  # seconds, from a refused handshake's Retry-After
        # Charging state.
        self.transaction_id: int | str | None = None
        self.seq_no = 0
        self.energy_wh = 1_000.0 + index

    # --- asyncio.Protocol ---------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        self.ws.send_request(self.ws.connect())
        self._flush()

    def data_received(self, data: bytes) -> None:
        ws = self.ws
        ws.receive_data(data)
        for event in ws.events_received():
            if isinstance(event, Frame):
                if event.opcode is Opcode.TEXT or event.opcode is Opcode.BINARY:
                    self._on_message(event.data)
            elif isinstance(event, Response) and not self.opened.done():
                if ws.state is State.OPEN:
                    self.opened.set_result(None)
                else:
                    status = event.status_code
                    with contextlib.suppress(ValueError):
                        self.retry_after = float(event.headers.get("Retry-After", "0"))
                    self.opened.set_exception(ConnectError(f"http_{status}"))
        self._flush()
        if ws.close_expected() and self.transport is not None:
            self.worker.loop.call_later(2.0, self.transport.abort)

    def eof_received(self) -> bool | None:
        self.ws.receive_eof()
        self._flush()
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        if not self.opened.done():
            self.opened.set_exception(ConnectError("closed"))
        if not self.closed.done():
            self.closed.set_result(None)
        if self.pending_future is not None and not self.pending_future.done():
            self.pending_future.set_exception(ConnectError("closed"))
        self.worker.on_lost(self)

    def _flush(self) -> None:
        transport = self.transport
        if transport is None:
            return
        for chunk in self.ws.data_to_send():
            if chunk:
                transport.write(chunk)
            elif transport.can_write_eof():
                transport.write_eof()

    # --- CALLs --------------------------------------------------------------

    def send_call(self, action: str, payload: JsonObject) -> None:
        self.sequence += 1
        unique_id = f"{self.worker.config.nonce}{self.sequence}"
        self.pending_id = unique_id
        self.pending_action = action
        self.sent_at = time.monotonic()
        self.ws.send_text(orjson.dumps([CALL, unique_id, action, payload]))
        self._flush()

    async def call(self, action: str, payload: JsonObject) -> JsonObject:
        """Send one CALL and wait for its CALLRESULT (setup phase only)."""
        future: asyncio.Future[list[Any]] = self.worker.loop.create_future()
        self.pending_future = future
        self.send_call(action, payload)
        try:
            async with asyncio.timeout(self.worker.config.call_timeout):
                frame = await future
        except TimeoutError:
            raise ConnectError(f"{action}_timeout") from None
        finally:
            self.pending_future = None
            self.pending_id = None
        if frame[0] != CALLRESULT:
            raise ConnectError(f"{action}_{frame[2] if len(frame) > 2 else 'CALLERROR'}")
        result: JsonObject = frame[2]
        return result

    def _on_message(self, data: bytes | bytearray | memoryview) -> None:
        now = time.monotonic()
        try:
            frame = orjson.loads(data)
            kind, unique_id = frame[0], frame[1]
        except (orjson.JSONDecodeError, IndexError, KeyError, TypeError):
            self.worker.result.stale_answers += 1
            return
        if kind == CALL:
            self._answer_server_call(unique_id)
            return
        if unique_id != self.pending_id:
            self.worker.result.stale_answers += 1
            return
        if self.pending_future is not None:
            if not self.pending_future.done():
                self.pending_future.set_result(frame)
            return
        self.pending_id = None
        self.worker.on_answer(self, frame, now - self.sent_at, now)

    def _answer_server_call(self, unique_id: Any) -> None:
        """With ``answer_calls``, accept any CSMS-initiated CALL (the answer of
        TriggerMessage, Reset, ChangeAvailability...); else say it is not supported."""
        self.worker.result.server_calls += 1
        reply: list[Any]
        if self.worker.config.answer_calls:
            reply = [CALLRESULT, unique_id, {"status": "Accepted"}]
        else:
            reply = [CALLERROR, unique_id, "NotSupported", "load generator station", {}]
        self.ws.send_text(orjson.dumps(reply))
        self._flush()

    def close(self) -> None:
        if self.transport is None:
            return
        with contextlib.suppress(Exception):
            self.ws.send_close(1000)
            self._flush()

    # --- payloads -----------------------------------------------------------

    def boot_payload(self) -> JsonObject:
        if self.protocol == OCPP16:
            return {
                "chargePointVendor": "LoadGen",
                "chargePointModel": "LG-1",
                "chargePointSerialNumber": self.station_id[:25],
                "firmwareVersion": "lg-1.0",
            }
        return {
            "reason": "PowerUp",
            "chargingStation": {
                "model": "LG-1",
                "vendorName": "LoadGen",
                "serialNumber": self.station_id[:25],
                "firmwareVersion": "lg-1.0",
            },
        }

    def next_call(self, now: float) -> tuple[str, JsonObject]:
        """The steady-state CALL of this station's workload."""
        workload = self.worker.config.workload
        if workload == "heartbeat16":
            return "Heartbeat", {}
        if workload == "metervalues16":
            return "MeterValues", self.meter_values16(now)
        if workload == "transactionevent201":
            return "TransactionEvent", self.transaction_event201("Updated", now)
        return self.mixed_call(now)

    def mixed_call(self, now: float) -> tuple[str, JsonObject]:
        pick = self.rng.random() * self.worker.mix_total
        kind = next(name for name, bound in self.worker.mix_bounds if pick < bound)
        v16 = self.protocol == OCPP16
        timestamp = self.worker.clock.text(now)
        if kind == "MeterValues":
            if v16:
                return "MeterValues", self.meter_values16(now)
            if self.transaction_id is not None:
                return "TransactionEvent", self.transaction_event201("Updated", now)
            return "MeterValues", {"evseId": 1, "meterValue": self.meter_value201(now)}
        if kind == "Heartbeat":
            return "Heartbeat", {}
        if kind == "StatusNotification":
            status16, status201 = (
                ("Charging", "Occupied") if self.transaction_id is not None else ("Available",) * 2
            )
            if v16:
                payload: JsonObject = {"connectorId": 1, "errorCode": "NoError", "status": status16}
                payload["timestamp"] = timestamp
                return "StatusNotification", payload
            return "StatusNotification", {
                "timestamp": timestamp,
                "connectorStatus": status201,
                "evseId": 1,
                "connectorId": 1,
            }
        if kind == "Authorize":
            if v16:
                return "Authorize", {"idTag": self.worker.config.id_tag}
            return "Authorize", {"idToken": {"idToken": self.worker.config.id_tag, "type": "Local"}}
        # A transaction: start one, or end the one running.
        if self.transaction_id is None:
            return self.start_transaction(now)
        if v16:
            payload = {
                "transactionId": self.transaction_id,
                "meterStop": int(self.energy_wh),
                "timestamp": timestamp,
                "reason": "Local",
            }
            self.transaction_id = None
            return "StopTransaction", payload
        payload = self.transaction_event201("Ended", now)
        self.transaction_id = None
        return "TransactionEvent", payload

    def start_transaction(self, now: float) -> tuple[str, JsonObject]:
        timestamp = self.worker.clock.text(now)
        if self.protocol == OCPP16:
            payload = {
                "connectorId": 1,
                "idTag": self.worker.config.id_tag,
                "meterStart": int(self.energy_wh),
                "timestamp": timestamp,
            }
            return "StartTransaction", payload
        self.seq_no = 0
        self.transaction_id = f"{self.worker.config.nonce}{self.index}-{self.sequence}"[:36]
        return "TransactionEvent", self.transaction_event201("Started", now)

    def meter_values16(self, now: float) -> JsonObject:
        self.energy_wh += 3.0
        payload: JsonObject = {
            "connectorId": 1,
            "meterValue": [
                {
                    "timestamp": self.worker.clock.text(now),
                    "sampledValue": [
                        _sv16(f"{self.energy_wh:.1f}", "Energy.Active.Import.Register", "Wh"),
                        _sv16("11040.0", "Power.Active.Import", "W"),
                        _sv16("16.0", "Current.Import", "A", phase="L1"),
                        _sv16("230.1", "Voltage", "V", phase="L1-N"),
                        _sv16("42", "SoC", "Percent", location="EV"),
                        _sv16("28.4", "Temperature", "Celsius", location="Body"),
                    ],
                }
            ],
        }
        if self.transaction_id is not None:
            payload["transactionId"] = self.transaction_id
        return payload

    def meter_value201(self, now: float) -> list[JsonObject]:
        self.energy_wh += 3.0
        return [
            {
                "timestamp": self.worker.clock.text(now),
                "sampledValue": [
                    _sv201(round(self.energy_wh, 1), "Energy.Active.Import.Register", "Wh"),
                    _sv201(11040.0, "Power.Active.Import", "W"),
                    _sv201(16.0, "Current.Import", "A", phase="L1"),
                    _sv201(230.1, "Voltage", "V", phase="L1-N"),
                    _sv201(42.0, "SoC", "Percent", location="EV"),
                    _sv201(50.0, "Frequency", "Hz"),
                ],
            }
        ]

    def transaction_event201(self, event_type: str, now: float) -> JsonObject:
        trigger = {"Started": "Authorized", "Ended": "StopAuthorized"}.get(
            event_type, "MeterValuePeriodic"
        )
        info: JsonObject = {"transactionId": self.transaction_id}
        payload: JsonObject = {
            "eventType": event_type,
            "timestamp": self.worker.clock.text(now),
            "triggerReason": trigger,
            "seqNo": self.seq_no,
            "transactionInfo": info,
            "evse": {"id": 1, "connectorId": 1},
        }
        self.seq_no += 1
        if event_type == "Started":
            info["chargingState"] = "Charging"
            payload["idToken"] = {"idToken": self.worker.config.id_tag, "type": "Local"}
        elif event_type == "Ended":
            info["stoppedReason"] = "Local"
        payload["meterValue"] = (
            self.meter_value201(now)
            if event_type == "Updated"
            else [
                {
                    "timestamp": payload["timestamp"],
                    "sampledValue": [
                        {
                            "value": round(self.energy_wh, 1),
                            "context": "Transaction.Begin"
                            if event_type == "Started"
                            else "Transaction.End",
                            "measurand": "Energy.Active.Import.Register",
                            "unitOfMeasure": {"unit": "Wh"},
                        }
                    ],
                }
            ]
        )
        return payload


def _sv16(value: str, measurand: str, unit: str, **extra: str) -> JsonObject:
    return {
        "value": value,
        "context": "Sample.Periodic",
        "format": "Raw",
        "measurand": measurand,
        "unit": unit,
        "location": "Outlet",
        **extra,
    }


def _sv201(value: float, measurand: str, unit: str, **extra: str) -> JsonObject:
    return {
        "value": value,
        "context": "Sample.Periodic",
        "measurand": measurand,
        "location": "Outlet",
        "unitOfMeasure": {"unit": unit},
        **extra,
    }


class ConnectError(Exception):
    """A station could not connect, boot or set up; the message is the reason."""


def _check_boot(answer: JsonObject) -> None:
    if answer.get("status") != "Accepted":
        raise ConnectError(f"boot_{answer.get('status')}")


@dataclass(frozen=True, slots=True)
class Window:
    """Monotonic times shared by parent and workers (CLOCK_MONOTONIC is system-wide)."""

    start: float  # load begins
    measure: float  # counting begins (after warmup)
    end: float  # counting and load end


class Worker:
    """One process's share of the stations, and what it measured."""

    def __init__(self, config: Config, number: int, indices: Sequence[int]) -> None:
        self.config = config
        self.number = number
        self.indices = indices
        self.loop = asyncio.get_running_loop()
        self.result = WorkerResult()
        self.stations: list[Station] = []
        self.clock = Clock()
        self.window = Window(math.inf, math.inf, math.inf)
        self.running = False
        bound = 0
        bounds = []
        for name, weight in MIX:
            bound += weight
            bounds.append((name, bound))
        self.mix_bounds: tuple[tuple[str, int], ...] = tuple(bounds)
        self.mix_total = bound
        self.interval = (
            config.stations / config.rate if config.rate > 0 and config.sends_calls else 0.0
        )

    # --- connect, boot, set up --------------------------------------------

    async def connect_all(self, start_at: float) -> None:
        """Connect, boot and set up every station of this worker (a storm: all at once)."""
        await asyncio.sleep(max(0.0, start_at - time.monotonic()))
        storm = self.config.workload == "storm"
        limit = len(self.indices) if storm else max(1, self.config.connect_concurrency)
        gate = asyncio.Semaphore(limit)

        async def one(index: int) -> None:
            async with gate:
                await self._bring_up(index, start_at)

        await asyncio.gather(*(one(i) for i in self.indices))

    def target(self, index: int) -> str:
        """The URL station ``index`` connects to (each attempt asks again)."""
        return self.config.url

    async def _bring_up(self, index: int, start_at: float) -> bool:
        """Connect, boot and set up one station; with ``--retries``, a station that
        fails tries again (after the server's Retry-After, else a jittered
        backoff) as a real one would, within ``--connect-timeout`` in all.
        True once it is up, False when it gave up."""
        result = self.result
        deadline = time.monotonic() + self.config.connect_timeout
        attempt = 0
        while True:
            url = self.target(index)
            host, port = _host_port(url)
            source = None
            if _is_ipv4_loopback(host):
                source = (f"127.0.{1 + index % SOURCE_ADDRESSES}.{1 + self.number}", 0)
            station = Station(self, index, url)
            try:
                async with asyncio.timeout(max(0.0, deadline - time.monotonic())):
                    await self._connect_boot(station, host, port, source, start_at)
            except TimeoutError:
                reason = "timeout"
            except ConnectError as exc:
                reason = str(exc)
            except OSError as exc:
                reason = type(exc).__name__
            else:
                self.stations.append(station)
                return True
            if station.transport is not None:
                station.transport.abort()
            delay = station.retry_after or min(8.0, 0.5 * 2**attempt) * random.uniform(0.5, 1)
            if attempt >= self.config.retries or time.monotonic() + delay >= deadline:
                self._failed(station, reason)
                return False
            attempt += 1
            result.retries[reason] = result.retries.get(reason, 0) + 1
            await asyncio.sleep(delay)

    async def _connect_boot(
        self,
        station: Station,
        host: str,
        port: int,
        source: tuple[str, int] | None,
        start_at: float,
    ) -> None:
        result = self.result
        await self.loop.create_connection(lambda: station, host, port, local_addr=source)
        await station.opened
        result.connected += 1
        result.connect_s.append(time.monotonic() - start_at)
        answer = await station.call("BootNotification", station.boot_payload())
        _check_boot(answer)
        result.booted += 1
        result.booted_s.append(time.monotonic() - start_at)
        await self._set_up(station)

    async def _set_up(self, station: Station) -> None:
        workload = self.config.workload
        if workload == "metervalues16":
            _, payload = station.start_transaction(time.monotonic())
            answer = await station.call("StartTransaction", payload)
            station.transaction_id = int(answer["transactionId"])
        elif workload == "transactionevent201":
            _, payload = station.start_transaction(time.monotonic())
            await station.call("TransactionEvent", payload)

    def _failed(self, station: Station, reason: str) -> None:
        failures = self.result.connect_failures
        failures[reason] = failures.get(reason, 0) + 1
        if station.transport is not None:
            station.transport.abort()

    # --- load -----------------------------------------------------------------

    async def run_load(self, window: Window) -> None:
        """Send CALLs from ``window.start`` until ``window.end``."""
        self.window = window
        await asyncio.sleep(max(0.0, window.start - time.monotonic()))
        self.running = True
        sweeper = asyncio.create_task(self._sweep_timeouts())
        try:
            if self.config.sends_calls:
                if self.interval > 0:
                    self._start_open_loop()
                else:
                    now = time.monotonic()
                    for station in self.stations:
                        if station.transport is not None:
                            self._send_next(station, now)
            await asyncio.sleep(max(0.0, window.end - time.monotonic()))
        finally:
            self.running = False
            sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sweeper

    def _start_open_loop(self) -> None:
        rng = random.Random(self.number)
        start = self.window.start
        for station in self.stations:
            first = start + rng.random() * self.interval
            self.loop.call_later(max(0.0, first - time.monotonic()), self._tick, station, first)

    def _tick(self, station: Station, due: float) -> None:
        """Open loop: a send is due; send it, or owe it while a CALL is outstanding."""
        if not self.running or station.transport is None:
            return
        if station.pending_id is None:
            self._send_next(station, time.monotonic())
        else:
            station.owed += 1
        following = due + self.interval
        self.loop.call_later(max(0.0, following - time.monotonic()), self._tick, station, following)

    def _send_next(self, station: Station, now: float) -> None:
        action, payload = station.next_call(now)
        station.send_call(action, payload)

    def on_answer(self, station: Station, frame: list[Any], rtt: float, now: float) -> None:
        result = self.result
        action = station.pending_action
        window = self.window
        counted = window.measure <= now < window.end
        if frame[0] == CALLRESULT:
            if counted:
                result.answered += 1
                result.rtt_s.append(rtt)
                result.by_action[action] = result.by_action.get(action, 0) + 1
                times = result.rtt_by_action.get(action)
                if times is None:
                    times = result.rtt_by_action[action] = array("d")
                times.append(rtt)
            if action == "StartTransaction" and isinstance(frame[2], dict):
                station.transaction_id = frame[2].get("transactionId")
        elif counted:
            code = str(frame[2]) if len(frame) > 2 else "?"
            result.call_errors[code] = result.call_errors.get(code, 0) + 1
        if not self.running or station.transport is None:
            return
        if self.interval == 0:
            self._send_next(station, now)
        elif station.owed:
            station.owed -= 1
            if counted:
                result.late_sends += 1
            self._send_next(station, now)

    def on_lost(self, station: Station) -> None:
        if self.running:
            self.result.disconnects += 1

    async def _sweep_timeouts(self) -> None:
        timeout = self.config.call_timeout
        while True:
            await asyncio.sleep(0.25)
            now = time.monotonic()
            for station in self.stations:
                if station.pending_id is not None and now - station.sent_at > timeout:
                    station.pending_id = None
                    if self.window.measure <= now < self.window.end:
                        self.result.timeouts += 1
                    if self.running and station.transport is not None and self.interval == 0:
                        self._send_next(station, now)

    async def close_all(self) -> None:
        for station in self.stations:
            station.close()
        pending = [s.closed for s in self.stations if not s.closed.done()]
        if pending:
            await asyncio.wait(pending, timeout=3.0)
        for station in self.stations:
            if station.transport is not None:
                station.transport.abort()


# --- worker process ----------------------------------------------------------


def raise_fd_limit() -> int:
    """Raise this process's open-file limit to the hard limit; return it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def worker_main(config: Config, number: int, indices: list[int], pipe: Any) -> None:
    """Entry point of a worker process: talk to the parent over ``pipe``."""
    raise_fd_limit()
    if config.uvloop:
        import uvloop  # noqa: PLC0415 - optional dependency, only when asked for

        uvloop.run(_worker(config, number, indices, pipe))
    else:
        asyncio.run(_worker(config, number, indices, pipe))


async def _worker(config: Config, number: int, indices: list[int], pipe: Any) -> None:
    loop = asyncio.get_running_loop()
    worker = Worker(config, number, indices)
    started = time.process_time()
    try:
        connect_at: float = await loop.run_in_executor(None, pipe.recv)
        await worker.connect_all(connect_at)
        pipe.send(("ready", len(worker.stations)))
        message = await loop.run_in_executor(None, pipe.recv)
        if message is not None:
            await worker.run_load(message)
        await worker.close_all()
    finally:
        worker.result.cpu_s = time.process_time() - started
        pipe.send(("done", worker.result))


# --- parent: orchestration and report --------------------------------------


@dataclass(slots=True)
class ProcSample:
    """A /proc snapshot of the server process."""

    at: float
    cpu_s: float
    rss_kib: int
    hwm_kib: int
    threads: int


def machine_busy_s() -> float:
    """CPU seconds all cores of this machine spent busy since boot (/proc/stat)."""
    with open("/proc/stat", encoding="ascii") as stat:
        fields = [int(v) for v in stat.readline().split()[1:]]
    idle = fields[3] + fields[4]  # idle, iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


SERVICES = {"postgres": "PostgreSQL", "beam.smp": "RabbitMQ"}


def services_cpu_s(extra_pids: Sequence[int] = ()) -> dict[int, tuple[str, float]]:
    """CPU seconds of each database and broker process (by command name) and
    of ``extra_pids`` (an external relay, as "relay"), by PID."""
    ticks = os.sysconf("SC_CLK_TCK")
    found: dict[int, tuple[str, float]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", encoding="ascii") as stat:
                head, tail = stat.read().rsplit(")", 1)
        except OSError:  # gone meanwhile
            continue
        pid = int(entry.name)
        group = "relay" if pid in extra_pids else SERVICES.get(head.split("(", 1)[1])
        if group is not None:
            fields = tail.split()
            found[pid] = (group, (int(fields[11]) + int(fields[12])) / ticks)
    return found


def services_cpu_percent(
    start: dict[int, tuple[str, float]],
    end: dict[int, tuple[str, float]],
    seconds: float,
    relay: bool,
) -> dict[str, float]:
    """Each group's CPU between two samples, in % of a core. A process that
    ended in between is left out (its last ticks are unknown); one that
    started counts from zero."""
    groups = [*SERVICES.values(), *(["relay"] if relay else [])]
    totals = dict.fromkeys(groups, 0.0)
    for pid, (group, cpu) in end.items():
        totals[group] += cpu - start.get(pid, (group, 0.0))[1]
    return {name: 100 * value / max(seconds, 1e-9) for name, value in totals.items()}


def wait_quiet(limit_s: float, busy_cores: float = 0.3) -> tuple[float, float]:
    """Wait up to ``limit_s`` for a second in which the machine is nearly idle
    (less than ``busy_cores`` busy), so that another user's job does not skew a
    measurement. Returns (seconds waited, cores busy in the last second)."""
    started = time.monotonic()
    while True:
        before = machine_busy_s()
        time.sleep(1.0)
        busy = machine_busy_s() - before
        waited = time.monotonic() - started
        if busy < busy_cores or waited >= limit_s:
            return waited, busy


def read_proc(pid: int) -> ProcSample:
    """CPU seconds (user + system, all threads), RSS and peak RSS of ``pid``."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    cpu = (int(fields[11]) + int(fields[12])) / ticks  # utime, stime (fields 14, 15)
    rss = hwm = threads = 0
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
            elif line.startswith("VmHWM:"):
                hwm = int(line.split()[1])
            elif line.startswith("Threads:"):
                threads = int(line.split()[1])
    return ProcSample(time.monotonic(), cpu, rss, hwm, threads)


def percentile(sorted_values: Sequence[float], fraction: float) -> float:
    if not sorted_values:
        return math.nan
    rank = min(len(sorted_values) - 1, max(0, math.ceil(fraction * len(sorted_values)) - 1))
    return sorted_values[rank]


def _merge(target: dict[str, int], source: dict[str, int]) -> None:
    for key, value in source.items():
        target[key] = target.get(key, 0) + value


def run(
    config: Config,
    server_pid: int | None,
    outbox_dsn: str | None,
    window_file: str | None = None,
    metrics_url: str | None = None,
) -> dict[str, Any]:
    """Start the workers, drive the phases, and return the report as a dict."""
    raise_fd_limit()
    quiet_wait, busy_before = wait_quiet(config.wait_quiet) if config.wait_quiet else (0.0, 0.0)
    if busy_before >= 0.3:
        print(f"loadgen: the machine is busy ({busy_before:.2f} cores) before this run")
    context = multiprocessing.get_context("spawn")
    shares: list[list[int]] = [[] for _ in range(config.workers)]
    for index in range(config.stations):
        shares[index % config.workers].append(index)
    pipes: list[multiprocessing.connection.Connection] = []
    processes = []
    for number, share in enumerate(shares):
        mine, theirs = context.Pipe()
        process = context.Process(
            target=worker_main, args=(config, number, share, theirs), daemon=True
        )
        process.start()
        pipes.append(mine)
        processes.append(process)
    samples: list[ProcSample] = []

    def sample() -> ProcSample | None:
        if server_pid is None:
            return None
        with contextlib.suppress(OSError):
            taken = read_proc(server_pid)
            samples.append(taken)
            return taken
        return None

    # Connects are gated (--connect-concurrency per worker), so the fleet may need
    # several rounds of --connect-timeout; a storm needs one.
    per_worker = math.ceil(config.stations / config.workers)
    rounds = 1 if config.workload == "storm" else math.ceil(per_worker / config.connect_concurrency)
    deadline = time.monotonic() + config.connect_timeout * rounds + 60
    deadline += config.warmup + config.duration
    try:
        before = sample()
        machine_before = machine_busy_s()
        connect_at = time.monotonic() + 1.0  # every worker is up by then
        for pipe in pipes:
            pipe.send(connect_at)
        ready = _gather(pipes, "ready", deadline, sample)
        at_ready = sample()
        connected_at = time.monotonic()
        up = sum(int(count) for count in ready)
        window = Window(
            start=time.monotonic() + 0.2,
            measure=time.monotonic() + 0.2 + config.warmup,
            end=time.monotonic() + 0.2 + config.warmup + config.duration,
        )
        wall_start = time.time() + 0.2 + config.warmup
        for pipe in pipes:
            pipe.send(window)
        _sleep_sampling(window.measure, sample)
        if window_file:  # a profiler waits for this to sample the window only
            with open(window_file, "w", encoding="utf-8") as marker:
                marker.write(f"{config.duration}\n")
        at_measure = sample()
        machine_measure = machine_busy_s()
        services_measure = services_cpu_s(config.relay_pids)
        histograms_measure = server_histograms(metrics_url)
        _sleep_sampling(window.end, sample)
        at_end = sample()
        machine_end = machine_busy_s()
        services_end = services_cpu_s(config.relay_pids)
        histograms_end = server_histograms(metrics_url)
        wall_end = time.time()
        results: list[WorkerResult] = _gather(pipes, "done", deadline, sample)
    finally:
        for process in processes:
            process.join(timeout=5)
            if process.is_alive():
                process.terminate()
                process.join(timeout=5)
    total = WorkerResult()
    for part in results:
        total.connected += part.connected
        total.booted += part.booted
        _merge(total.connect_failures, part.connect_failures)
        _merge(total.retries, part.retries)
        total.connect_s.extend(part.connect_s)
        total.booted_s.extend(part.booted_s)
        total.answered += part.answered
        _merge(total.by_action, part.by_action)
        _merge(total.call_errors, part.call_errors)
        total.timeouts += part.timeouts
        total.late_sends += part.late_sends
        total.stale_answers += part.stale_answers
        total.server_calls += part.server_calls
        total.disconnects += part.disconnects
        total.rtt_s.extend(part.rtt_s)
        for action, times in part.rtt_by_action.items():
            total.rtt_by_action.setdefault(action, array("d")).extend(times)
        total.cpu_s += part.cpu_s
    rtt = sorted(total.rtt_s)
    connects = sorted(total.connect_s)
    boots = sorted(total.booted_s)
    report: dict[str, Any] = {
        "workload": config.workload,
        "url": config.url,
        "stations": config.stations,
        "workers": config.workers,
        "uvloop": config.uvloop,
        "mode": f"open loop {config.rate:g}/s" if config.rate > 0 else "closed loop",
        "duration_s": config.duration,
        "stations_up": up,
        "connected": total.connected,
        "booted": total.booted,
        "connect_failures": total.connect_failures,
        "connect_retries": total.retries,
        "connect_p50_s": percentile(connects, 0.5),
        "connect_p99_s": percentile(connects, 0.99),
        "booted_p50_s": percentile(boots, 0.5),
        "booted_p99_s": percentile(boots, 0.99),
        "all_booted_s": boots[-1] if boots and len(boots) == config.stations else math.nan,
        "setup_s": connected_at - connect_at,
        "answered": total.answered,
        "answered_per_s": total.answered / config.duration,
        "by_action": total.by_action,
        "rtt_p50_ms": percentile(rtt, 0.5) * 1000,
        "rtt_p90_ms": percentile(rtt, 0.9) * 1000,
        "rtt_p99_ms": percentile(rtt, 0.99) * 1000,
        "rtt_max_ms": (rtt[-1] * 1000) if rtt else math.nan,
        "rtt_by_action_ms": {
            action: {
                "p50": percentile(ordered, 0.5) * 1000,
                "p99": percentile(ordered, 0.99) * 1000,
            }
            for action, ordered in (
                (action, sorted(times)) for action, times in sorted(total.rtt_by_action.items())
            )
        },
        "call_errors": total.call_errors,
        "timeouts": total.timeouts,
        "late_sends": total.late_sends,
        "stale_answers": total.stale_answers,
        "server_calls": total.server_calls,
        "disconnects": total.disconnects,
        "loadgen_cpu_s": total.cpu_s,
        # Every process on the machine, in cores busy: more than server + generator
        # + database + broker means someone else was using the machine.
        "machine_busy_cores": (machine_end - machine_measure) / max(1e-9, config.duration),
        "machine_busy_before_cores": busy_before,
        # What the database, the broker (and an external relay) spent in the window.
        "services_cpu_percent": services_cpu_percent(
            services_measure, services_end, config.duration, bool(config.relay_pids)
        ),
        "quiet_wait_s": quiet_wait,
        "machine_busy_setup_cores": (machine_measure - machine_before)
        / max(1e-9, window.measure - connect_at + 1.0),
    }
    if at_measure is not None and at_end is not None and before is not None:
        seconds = at_end.at - at_measure.at
        cpu = at_end.cpu_s - at_measure.cpu_s
        report.update(
            server_pid=server_pid,
            server_cpu_percent=100 * cpu / seconds if seconds > 0 else math.nan,
            server_cpu_us_per_call=(1e6 * cpu / total.answered) if total.answered else math.nan,
            server_rss_before_kib=before.rss_kib,
            server_rss_kib=at_end.rss_kib,
            server_rss_max_kib=max(s.rss_kib for s in samples),
            server_rss_per_station_kib=(at_end.rss_kib / up) if up else math.nan,
            server_rss_delta_per_station_kib=((at_end.rss_kib - before.rss_kib) / up)
            if up
            else math.nan,
            server_threads=at_end.threads,
            server_setup_cpu_s=(at_ready.cpu_s - before.cpu_s) if at_ready else math.nan,
        )
    if histograms_measure and histograms_end:
        report.update(server_tails(histograms_measure, histograms_end))
    if outbox_dsn:
        report.update(outbox_lag(outbox_dsn, wall_start, wall_end))
    return report


# The server's own view of its tail, from its /metrics: how late its event loop
# woke, and how long its group commits took.
SERVER_HISTOGRAMS = {
    "loop_lag": "csms_event_loop_lag_seconds",
    "commit": "csms_storage_commit_seconds",
}
SLOW_S = 0.05


def server_histograms(url: str | None) -> dict[str, dict[float, float]]:
    """Each of SERVER_HISTOGRAMS as {bucket upper bound: cumulative count}; {}
    without a URL or when the server does not answer (a baseline)."""
    if not url:
        return {}
    import urllib.request  # noqa: PLC0415 - only with --metrics-url

    from prometheus_client.parser import text_string_to_metric_families  # noqa: PLC0415

    try:
        with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - loopback only
            text = response.read().decode()
    except OSError:
        return {}
    wanted = {name: key for key, name in SERVER_HISTOGRAMS.items()}
    found: dict[str, dict[float, float]] = {}
    for family in text_string_to_metric_families(text):
        key = wanted.get(family.name)
        if key is None:
            continue
        found[key] = {
            float(sample.labels["le"]): sample.value
            for sample in family.samples
            if sample.name.endswith("_bucket")
        }
    return found


def server_tails(
    start: dict[str, dict[float, float]], end: dict[str, dict[float, float]]
) -> dict[str, Any]:
    """Per histogram, in the window: observations, the bucket bound under which
    99 % of them fell, and how many took longer than SLOW_S."""
    tails: dict[str, Any] = {}
    for key in SERVER_HISTOGRAMS:
        if key not in start or key not in end:
            continue
        bounds = sorted(end[key])
        counts = [end[key][b] - start[key].get(b, 0.0) for b in bounds]
        total = counts[-1] if counts else 0.0
        p99 = next((b for b, c in zip(bounds, counts, strict=True) if c >= 0.99 * total), math.nan)
        fast = max((c for b, c in zip(bounds, counts, strict=True) if b <= SLOW_S), default=0.0)
        tails[f"server_{key}_count"] = int(total)
        tails[f"server_{key}_p99_bound_s"] = p99 if total else math.nan
        tails[f"server_{key}_over_50ms"] = int(total - fast)
    return tails


def _gather(
    pipes: Sequence[multiprocessing.connection.Connection],
    kind: str,
    deadline: float,
    sample: Callable[[], object],
) -> list[Any]:
    """Wait for one ``(kind, value)`` message from every worker; sample meanwhile."""
    values: dict[int, Any] = {}
    while len(values) < len(pipes):
        left = deadline - time.monotonic()
        if left <= 0:
            raise SystemExit(f"loadgen: workers did not report {kind!r} in time")
        waiting = [p for i, p in enumerate(pipes) if i not in values]
        for pipe in multiprocessing.connection.wait(waiting, timeout=min(0.5, left)):
            assert isinstance(pipe, multiprocessing.connection.Connection)
            try:
                got, value = pipe.recv()
            except EOFError:
                raise SystemExit("loadgen: a worker died; see its traceback above") from None
            number = pipes.index(pipe)
            if got == "done" and kind != "done":
                raise SystemExit(f"loadgen: worker {number} ended early")
            values[number] = value
        sample()
    return [values[i] for i in range(len(pipes))]


def _sleep_sampling(until: float, sample: Callable[[], object]) -> None:
    while (left := until - time.monotonic()) > 0:
        time.sleep(min(0.5, left))
        sample()


def outbox_lag(dsn: str, wall_start: float, wall_end: float, wait: float = 20.0) -> dict[str, Any]:
    """Per-event outbox lag (delivered_at - recorded_at) of the events recorded in
    the window, after waiting up to ``wait`` s for the relay to deliver them."""
    import asyncpg  # noqa: PLC0415 - only for --outbox-dsn

    async def query() -> dict[str, Any]:
        conn = await asyncpg.connect(dsn)
        try:
            start = datetime.fromtimestamp(wall_start, UTC)
            end = datetime.fromtimestamp(wall_end, UTC)
            waited = time.monotonic()
            pending = 0
            while time.monotonic() - waited < wait:
                pending = await conn.fetchval(
                    "SELECT count(*) FROM outbox WHERE delivered_at IS NULL"
                )
                if pending == 0:
                    break
                await asyncio.sleep(0.5)
            row = await conn.fetchrow(
                "SELECT count(*) AS events,"
                " count(*) FILTER (WHERE delivered_at IS NULL) AS undelivered,"
                " percentile_cont(0.5) WITHIN GROUP (ORDER BY"
                "   extract(epoch FROM delivered_at - recorded_at)) AS p50,"
                " percentile_cont(0.99) WITHIN GROUP (ORDER BY"
                "   extract(epoch FROM delivered_at - recorded_at)) AS p99,"
                " max(extract(epoch FROM coalesce(delivered_at, now()) - recorded_at)) AS worst"
                " FROM outbox WHERE recorded_at >= $1 AND recorded_at < $2",
                start,
                end,
            )
        finally:
            await conn.close()
        assert row is not None
        return {
            "outbox_events": int(row["events"]),
            "outbox_events_per_s": int(row["events"]) / max(1e-9, wall_end - wall_start),
            "outbox_undelivered": int(row["undelivered"]),
            "outbox_pending_after_wait": int(pending),
            "outbox_lag_p50_s": float(row["p50"]) if row["p50"] is not None else math.nan,
            "outbox_lag_p99_s": float(row["p99"]) if row["p99"] is not None else math.nan,
            "outbox_lag_max_s": float(row["worst"]) if row["worst"] is not None else math.nan,
        }

    try:
        return asyncio.run(query())
    except (OSError, asyncpg.PostgresError) as exc:
        return {"outbox_error": f"{type(exc).__name__}: {exc}"}


def print_report(report: dict[str, Any]) -> None:
    """A few human lines; ``--json`` has everything."""

    def ms(key: str) -> str:
        return f"{report[key]:.1f}"

    print(
        f"{report['workload']} ({report['mode']}): {report['stations_up']}/{report['stations']} "
        f"stations up, {report['workers']} workers" + (", uvloop" if report["uvloop"] else "")
    )
    if report["connect_failures"]:
        print(f"  connect failures: {report['connect_failures']}")
    if report["connect_retries"]:
        print(f"  retries (by the failure before them): {report['connect_retries']}")
    print(
        f"  connect p50/p99 {report['connect_p50_s']:.2f}/{report['connect_p99_s']:.2f} s, "
        f"booted p50/p99 {report['booted_p50_s']:.2f}/{report['booted_p99_s']:.2f} s, "
        f"all booted {report['all_booted_s']:.2f} s"
    )
    if report["answered"] or report["workload"] not in ("idle", "storm"):
        print(
            f"  answered {report['answered_per_s']:,.0f}/s; round trip ms p50 {ms('rtt_p50_ms')} "
            f"p90 {ms('rtt_p90_ms')} p99 {ms('rtt_p99_ms')} max {ms('rtt_max_ms')}"
        )
        by_action = report.get("rtt_by_action_ms") or {}
        if len(by_action) > 1:
            print(
                "  by action, ms p50/p99: "
                + ", ".join(f"{a} {t['p50']:.1f}/{t['p99']:.1f}" for a, t in by_action.items())
            )
        print(
            f"  errors: CALLERROR {report['call_errors'] or 0}, timeouts {report['timeouts']}, "
            f"disconnects {report['disconnects']}, late sends {report['late_sends']}"
        )
    if "server_cpu_percent" in report:
        print(
            f"  server: CPU {report['server_cpu_percent']:.0f} % "
            f"({report['server_cpu_us_per_call']:.0f} us/CALL), RSS "
            f"{report['server_rss_kib'] / 1024:.1f} MiB (max "
            f"{report['server_rss_max_kib'] / 1024:.1f}), "
            f"{report['server_rss_per_station_kib']:.1f} KiB/station total, "
            f"{report['server_rss_delta_per_station_kib']:.1f} KiB/station added"
        )
    services = report.get("services_cpu_percent") or {}
    if services:
        print("  others: " + ", ".join(f"{n} {v:.0f} % CPU" for n, v in services.items()))
    if "server_loop_lag_count" in report:
        parts = []
        for key, what in (("loop_lag", "event-loop wakeups"), ("commit", "group commits")):
            if f"server_{key}_count" in report:
                parts.append(
                    f"{what} p99 <= {report[f'server_{key}_p99_bound_s'] * 1000:g} ms "
                    f"({report[f'server_{key}_over_50ms']:,} of "
                    f"{report[f'server_{key}_count']:,} over 50 ms)"
                )
        print("  server: " + "; ".join(parts))
    if report.get("outbox_events") == 0:
        print("  outbox: no events recorded in the window")
    elif "outbox_events" in report:
        print(
            f"  outbox: {report['outbox_events_per_s']:,.0f} events/s, lag p50 "
            f"{report['outbox_lag_p50_s']:.2f} s p99 {report['outbox_lag_p99_s']:.2f} s max "
            f"{report['outbox_lag_max_s']:.2f} s, undelivered {report['outbox_undelivered']}"
        )
    elif "outbox_error" in report:
        print(f"  outbox: {report['outbox_error']}")
    print(
        f"  load generator CPU {report['loadgen_cpu_s']:.1f} s; machine busy "
        f"{report['machine_busy_cores']:.2f} of {os.cpu_count()} cores in the window"
    )


# --- command line -------------------------------------------------------------


def _host_port(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    return parts.hostname or "", parts.port or 80


def _is_ipv4_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).version == 4 and ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_loopback(url: str, scheme: str = "ws") -> None:
    """Refuse any URL that is not ``scheme``:// to a loopback address."""
    parts = urlsplit(url)
    if parts.scheme != scheme:
        raise SystemExit(f"loadgen: only {scheme}:// URLs (no TLS) are supported here")
    host = parts.hostname or ""
    if host == "localhost":
        return
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise SystemExit(f"loadgen: refusing {host!r}: only loopback targets (127.0.0.0/8, ::1)")


def _bounded(kind: Callable[[str], float], low: float, high: float) -> Callable[[str], float]:
    def parse(text: str) -> float:
        value = kind(text)
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{value} is not in [{low:g}, {high:g}]")
        return value

    return parse


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--url", default="ws://127.0.0.1:9000/ocpp", help="loopback ws:// URL prefix")
    p.add_argument("--workload", choices=WORKLOADS, default="heartbeat16")
    p.add_argument("--stations", type=_bounded(int, 1, MAX_STATIONS), default=1000)
    p.add_argument("--workers", type=_bounded(int, 1, 64), default=2)
    p.add_argument("--duration", type=_bounded(float, 0, MAX_DURATION), default=10.0)
    p.add_argument("--warmup", type=_bounded(float, 0, 60), default=2.0)
    p.add_argument(
        "--rate",
        type=_bounded(float, 0, MAX_RATE),
        default=0.0,
        help="open loop: total CALLs/s over all stations (0: closed loop, as fast as answered)",
    )
    p.add_argument(
        "--ocpp",
        choices=("1.6", "2.0.1", "both"),
        default="1.6",
        help="protocol for idle, storm, mixed (both: every other station)",
    )
    p.add_argument("--id-prefix", default="LG-", help="station ids are PREFIX000000...")
    p.add_argument("--id-tag", default="LOADGEN1", help="id token of the transactions")
    p.add_argument("--call-timeout", type=_bounded(float, 0.1, 120), default=10.0)
    p.add_argument("--connect-timeout", type=_bounded(float, 0.1, 300), default=30.0)
    p.add_argument(
        "--connect-concurrency",
        type=_bounded(int, 1, MAX_STATIONS),
        default=250,
        help="handshakes in flight per worker (a storm sends all at once)",
    )
    p.add_argument("--uvloop", action="store_true", help="run the workers on uvloop")
    p.add_argument("--server-pid", type=int, help="read this process's CPU and RSS from /proc")
    p.add_argument("--outbox-dsn", help="PostgreSQL DSN of the server: measure outbox lag")
    p.add_argument(
        "--metrics-url",
        help="the server's /metrics (loopback): its event-loop lag and group-commit times",
    )
    p.add_argument(
        "--wait-quiet",
        type=_bounded(float, 0, 600),
        default=0.0,
        help="wait up to this many seconds for an idle machine before starting",
    )
    p.add_argument(
        "--retries",
        type=_bounded(int, 0, 100),
        default=0,
        help="a station whose connect or boot fails tries again this often (Retry-After "
        "or backoff), within --connect-timeout",
    )
    p.add_argument("--label", default="", help="a name for this run in the JSON output")
    p.add_argument("--json", dest="json_path", help="append the full report as a JSON line")
    p.add_argument(
        "--relay-pid",
        type=int,
        action="append",
        default=[],
        help="an external `csms relay` process whose CPU is reported (repeatable)",
    )
    p.add_argument(
        "--window-file", help="write this file when the measurement window begins (for profilers)"
    )
    p.add_argument(
        "--answer-calls",
        action="store_true",
        help='answer CSMS-initiated CALLs with {"status": "Accepted"} (default: NotSupported)',
    )
    return p


def main(argv: list[str] | None = None) -> int:
    options = parser().parse_args(argv)
    check_loopback(options.url)
    if options.server_pid is not None and not os.path.exists(f"/proc/{options.server_pid}"):
        raise SystemExit(f"loadgen: no process {options.server_pid}")
    config = Config(
        url=options.url,
        workload=options.workload,
        stations=int(options.stations),
        workers=min(int(options.workers), int(options.stations)),
        duration=float(options.duration),
        warmup=float(options.warmup),
        rate=float(options.rate),
        ocpp=options.ocpp,
        id_prefix=options.id_prefix,
        id_tag=options.id_tag,
        call_timeout=float(options.call_timeout),
        connect_timeout=float(options.connect_timeout),
        connect_concurrency=int(options.connect_concurrency),
        uvloop=bool(options.uvloop),
        nonce=secrets.token_hex(3) + "-",
        wait_quiet=float(options.wait_quiet),
        retries=int(options.retries),
        relay_pids=tuple(options.relay_pid),
        answer_calls=bool(options.answer_calls),
    )
    if options.metrics_url:
        check_loopback(options.metrics_url, "http")
    report = run(
        config, options.server_pid, options.outbox_dsn, options.window_file, options.metrics_url
    )
    report["label"] = options.label
    print_report(report)
    if options.json_path:
        with open(options.json_path, "a", encoding="utf-8") as out:
            out.write(json.dumps(report, default=_jsonable) + "\n")
    failed = sum(report["connect_failures"].values())
    return 1 if failed and report["workload"] in ("idle", "storm") else 0


def _jsonable(value: object) -> object:
    return list(value) if isinstance(value, array) else str(value)


if __name__ == "__main__":
    sys.exit(main())
