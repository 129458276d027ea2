#!/usr/bin/env python3
"""BENCHMARK HELPER, NOT PART OF THE PRODUCT: the tables of a bench run.

Reads the JSON lines that ``scripts/loadgen.py --json`` appended (``--label``
names the server: ``bare``, ``ocpp``, ``csms-pg``, ``csms-sqlite``) and
prints two Markdown tables: each target against the three servers, then
every run in detail::

    python scripts/bench/table.py /tmp/csms-bench/results.jsonl
"""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

Report = dict[str, Any]
SERVERS = ("bare", "ocpp", "csms-pg", "csms-pg-ext", "csms-sqlite")
TITLES = {
    "bare": "bare websockets",
    "ocpp": "`ocpp` package",
    "csms-pg": "CSMS (PostgreSQL + RabbitMQ)",
    "csms-pg-ext": "CSMS (PostgreSQL + RabbitMQ), `csms relay` on core 1",
    "csms-sqlite": "CSMS (SQLite)",
    "bare-backlog": "bare websockets, backlog 4096",
}


def _rate(r: Report) -> str:
    return f"{r['answered_per_s']:,.0f}/s (p99 {r['rtt_p99_ms']:.0f} ms)"


def _lag(r: Report) -> str:
    text = _rate(r)
    if "outbox_lag_max_s" in r:
        text += f", outbox lag p99 {r['outbox_lag_p99_s']:.1f} s max {r['outbox_lag_max_s']:.1f} s"
    return text


def _mixed(r: Report) -> str:
    return f"{r['answered_per_s']:,.0f}/s, p99 {r['rtt_p99_ms']:.1f} ms"


def _idle(r: Report) -> str:
    return (
        f"{r['stations_up']:,} up, {r['server_rss_per_station_kib']:.1f} KiB/station "
        f"({r['server_rss_delta_per_station_kib']:.1f} added)"
    )


def _storm(r: Report) -> str:
    failed = sum(r["connect_failures"].values())
    text = f"{r['booted']:,} booted in {r['all_booted_s']:.1f} s, {failed} failed"
    if "server_setup_cpu_s" in r:
        text += f" (server CPU {r['server_setup_cpu_s']:.0f} s)"
    return text


def _ok(value: float, bound: float, *, at_least: bool) -> bool:
    return not math.isnan(value) and (value >= bound if at_least else value <= bound)


@dataclass(frozen=True, slots=True)
class Target:
    """One line of the issue's targets and how to judge a run against it."""

    name: str
    workload: str
    servers: tuple[str, ...]
    show: Callable[[Report], str]
    met: Callable[[Report], bool]


TARGETS = (
    Target(
        "1.6 Heartbeat >= 10,000/s",
        "heartbeat16",
        ("csms-pg",),
        _rate,
        lambda r: _ok(r["answered_per_s"], 10_000, at_least=True),
    ),
    Target(
        "1.6 MeterValues (6 values) >= 5,000/s, outbox lag < 2 s",
        "metervalues16",
        ("csms-pg",),
        _lag,
        lambda r: (
            _ok(r["answered_per_s"], 5_000, at_least=True)
            and _ok(r.get("outbox_lag_max_s", math.nan), 2.0, at_least=False)
        ),
    ),
    Target(
        "2.0.1 TransactionEvent Updated (6 values) >= 4,000/s",
        "transactionevent201",
        ("csms-pg",),
        _rate,
        lambda r: _ok(r["answered_per_s"], 4_000, at_least=True),
    ),
    Target(
        "mixed at 2,000 CALLs/s: p99 round trip <= 20 ms",
        "mixed",
        ("csms-pg",),
        _mixed,
        lambda r: (
            _ok(r["rtt_p99_ms"], 20.0, at_least=False)
            and _ok(r["answered_per_s"], 1_900, at_least=True)
        ),
    ),
    Target(
        "19,000 idle booted stations, <= 25 KiB RSS each",
        "idle",
        ("csms-pg",),
        _idle,
        lambda r: (
            r["stations_up"] >= 19_000
            and _ok(r["server_rss_per_station_kib"], 25.0, at_least=False)
        ),
    ),
    Target(
        "reconnect storm of 19,000: all booted within 30 s, none failed",
        "storm",
        ("csms-pg",),
        _storm,
        lambda r: (
            r["booted"] >= 19_000
            and not r["connect_failures"]
            and _ok(r["all_booted_s"], 30.0, at_least=False)
        ),
    ),
    Target(
        "embedded SQLite: 1.6 MeterValues >= 2,000/s",
        "metervalues16",
        ("csms-sqlite",),
        _rate,
        lambda r: _ok(r["answered_per_s"], 2_000, at_least=True),
    ),
)


def load(path: str) -> dict[tuple[str, str], Report]:
    """The last report of each (label, workload)."""
    runs: dict[tuple[str, str], Report] = {}
    with open(path, encoding="utf-8") as lines:
        for line in lines:
            if line.strip():
                report = json.loads(line)
                runs[(report["label"], report["workload"])] = report
    return runs


def targets_table(runs: dict[tuple[str, str], Report]) -> list[str]:
    rows = [
        "| target | bare websockets | `ocpp` package | CSMS | met "
        "| CSMS, `csms relay` process on core 1 | met |",
        "|---|---|---|---|---|---|---|",
    ]
    for target in TARGETS:
        judged = target.servers[0]
        external = "csms-pg-ext" if judged == "csms-pg" else None
        cells = []
        for baseline in ("bare", "ocpp"):
            report = runs.get((baseline, target.workload))
            cells.append(target.show(report) if report is not None else "-")
        for label in (judged, external):
            report = None if label is None else runs.get((label, target.workload))
            cells.append("-" if report is None else target.show(report))
            cells.append("-" if report is None else ("yes" if target.met(report) else "**no**"))
        if judged == "csms-sqlite":
            cells[2] = f"SQLite: {cells[2]}"
        rows.append(f"| {target.name} | {' | '.join(cells)} |")
    return rows


def _services(r: Report) -> str:
    cpu = r.get("services_cpu_percent") or {}
    if not cpu:
        return "-"
    relay = cpu.get("relay")
    parts = [f"{cpu.get('PostgreSQL', 0):.0f} %", f"{cpu.get('RabbitMQ', 0):.0f} %"]
    return " / ".join([*parts, "-" if relay is None else f"{relay:.0f} %"])


def detail_table(runs: dict[tuple[str, str], Report]) -> list[str]:
    rows = [
        "| server | workload | stations | answered/s | p50 / p90 / p99 / max ms | errors "
        "| server CPU | CPU/CALL | server RSS | load generator CPU | PostgreSQL / RabbitMQ "
        "/ relay CPU | machine busy, cores |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for (label, workload), r in sorted(runs.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        errors = sum(r["call_errors"].values()) + r["timeouts"] + r["disconnects"]
        errors += sum(r["connect_failures"].values())
        latency = (
            f"{r['rtt_p50_ms']:.1f} / {r['rtt_p90_ms']:.1f} / {r['rtt_p99_ms']:.1f} / "
            f"{r['rtt_max_ms']:.1f}"
            if r["answered"]
            else "-"
        )
        cpu = f"{r.get('server_cpu_percent', math.nan):.0f} %"
        per_call = r.get("server_cpu_us_per_call", math.nan)
        rss = r.get("server_rss_kib", 0) / 1024
        rows.append(
            f"| {TITLES.get(label, label)} | {workload} | {r['stations_up']:,} "
            f"| {r['answered_per_s']:,.0f} | {latency} | {errors} | {cpu} "
            f"| {'-' if math.isnan(per_call) else f'{per_call:.0f} us'} | {rss:.0f} MiB "
            f"| {r['loadgen_cpu_s']:.1f} s | {_services(r)} "
            f"| {r.get('machine_busy_cores', math.nan):.2f} "
            f"({r.get('machine_busy_before_cores', math.nan):.2f} before) |"
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("results", help="JSON lines from loadgen.py --json")
    options = parser.parse_args()
    runs = load(options.results)
    print("\n".join(targets_table(runs)))
    print()
    print("\n".join(detail_table(runs)))


if __name__ == "__main__":
    main()
