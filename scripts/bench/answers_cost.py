"""What a durable answer (ADR 0012) costs, apart from the noise of a full run.

    python -m scripts.bench.answers_cost postgresql://postgres@127.0.0.1:5432/postgres

Python: building the ``CallAnswered`` of a 1.6 MeterValues (six samples) per
CALL, and the frame hash the memory cache takes of every CALL. PostgreSQL:
the median time of one group-commit statement for 100 MeterValues units,
without answers (``csms_apply_batch``) and with them
(``csms_apply_answered_batch``), alternated, on a scratch database it drops;
with ``synchronous_commit`` off, so that the figure is the statement's work
and not the WAL flush of its commit.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import asyncpg
import orjson

from csms.adapters.storage import open_storage
from csms.adapters.storage import postgres as pg
from csms.adapters.storage.batching import group_ops
from csms.core.domain import MeterSample
from csms.core.events import Event
from csms.core.ports import EventAppended, MeterSamplesRecorded, WriteOp
from csms.services.replies import Reply, request_digest
from csms.transport.rpc import Call

ROUNDS = 4
BATCHES = 100
UNITS = 100


def _sampled(value: str, measurand: str, unit: str, **more: str) -> dict[str, str]:
    return {
        "value": value,
        "measurand": measurand,
        "unit": unit,
        "context": "Sample.Periodic",
        **more,
    }


PAYLOAD: dict[str, Any] = {
    "connectorId": 1,
    "transactionId": 12345,
    "meterValue": [
        {
            "timestamp": "2026-12-04T03:00:00.123Z",
            "sampledValue": [
                _sampled("1234.0", "Energy.Active.Import.Register", "Wh"),
                _sampled("11040.0", "Power.Active.Import", "W"),
                _sampled("16.0", "Current.Import", "A", phase="L1"),
                _sampled("230.1", "Voltage", "V", phase="L1-N"),
                _sampled("42", "SoC", "Percent", location="EV"),
                _sampled("28.4", "Temperature", "Celsius", location="Body"),
            ],
        }
    ],
}


def _empty(_: object) -> dict[str, Any]:
    return {}


def python_costs(n: int = 200_000) -> None:
    call = Call("123456", "MeterValues", PAYLOAD)
    started = time.perf_counter()
    for _ in range(n):
        Reply("CP-1", call, _empty).answered(None)
    answered = (time.perf_counter() - started) / n * 1e6
    started = time.perf_counter()
    for _ in range(n):
        request_digest(PAYLOAD)
    digest = (time.perf_counter() - started) / n * 1e6
    raw = orjson.dumps([2, "123456", "MeterValues", PAYLOAD]).decode()
    started = time.perf_counter()
    for _ in range(n):
        hash(raw[:-1] + "]")  # a new string each time, as a received frame is
    frame = (time.perf_counter() - started) / n * 1e6
    print(f"CallAnswered per CALL: {answered:.2f} us (digest {digest:.2f} us)")
    print(f"frame hash per CALL: {frame:.2f} us")


def _units(message_id: str, answers: bool) -> list[list[WriteOp]]:
    now = datetime.now(UTC)
    sample = MeterSample(now, "Energy.Active.Import.Register", 1.0, "Wh", None, None, None)
    units: list[list[WriteOp]] = []
    for i in range(UNITS):
        station = f"CP-{i}"
        event = Event.new("meter.values", station, "1.6", now, now, {"n": i})
        unit: list[WriteOp] = [
            MeterSamplesRecorded(station, "12345", 1, (sample,) * 6),
            EventAppended(event),
        ]
        if answers:
            unit.append(
                Reply(station, Call(message_id, "MeterValues", PAYLOAD), _empty).answered(None)
            )
        units.append(unit)
    return units


async def database_costs(server: str) -> None:
    admin = await asyncpg.connect(server)
    name = f"csms_answers_cost_{uuid.uuid4().hex[:8]}"
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        dsn = server.rsplit("/", 1)[0] + "/" + name
        await (await open_storage(dsn)).close()  # migrated
        conn = await asyncpg.connect(dsn)
        await pg._init_connection(conn)  # the adapter's jsonb codec
        # The statement's own work, not the WAL flush of its commit (which
        # the group commit shares and the disk's mood decides).
        await conn.execute("SET synchronous_commit = off")
        medians: dict[bool, list[float]] = {False: [], True: []}
        for round_ in range(ROUNDS):
            for answers in (False, True):
                times = []
                for k in range(BATCHES):
                    ops = group_ops(_units(f"{round_}-{k}", answers))
                    document = pg._batch_document(ops, datetime.now(UTC))
                    sql = pg._APPLY_ANSWERED_BATCH if answers else pg._APPLY_BATCH
                    started = time.perf_counter()
                    await conn.execute(sql, document)
                    times.append(time.perf_counter() - started)
                medians[answers].append(round(statistics.median(times[10:]) * 1e3, 2))
        await conn.close()
        for answers, figures in medians.items():
            label = "with answers" if answers else "without answers"
            print(f"{UNITS} MeterValues units, {label}: {figures} ms per statement (medians)")
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


def main() -> None:
    python_costs()
    asyncio.run(database_costs(sys.argv[1]))


if __name__ == "__main__":
    main()
