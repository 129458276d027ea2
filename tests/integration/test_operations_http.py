"""The operations listener: liveness, readiness and Prometheus metrics that move as stations act."""

from __future__ import annotations

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from csms.app import Running
from scripts.simulate import SimStation
from tests.integration.conftest import http_url, ws_url
from tests.integration.polling import poll_until


async def get(running: Running, path: str) -> tuple[int, str]:
    async with aiohttp.ClientSession() as session, session.get(http_url(running, path)) as r:
        return r.status, await r.text()


def sample_value(text: str, name: str, **labels: str) -> float:
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    return 0.0


class TestHealth:
    async def test_live_and_ready_answer_200_with_the_contract_body(self, csms: Running) -> None:
        """Ready reports the database up and the broker disabled when none is configured."""
        assert (await get(csms, "/health/live"))[0] == 200
        async with (
            aiohttp.ClientSession() as session,
            session.get(http_url(csms, "/health/ready")) as r,
        ):
            assert r.status == 200
            body = await r.json()
        assert body == {
            "status": "ready",
            "checks": {"database": "up", "broker": "disabled", "draining": False},
        }

    async def test_ready_is_503_when_the_database_is_gone(self, csms: Running) -> None:
        """With the storage closed underneath, readiness says unready and database down."""
        await csms.storage.close()
        async with (
            aiohttp.ClientSession() as session,
            session.get(http_url(csms, "/health/ready")) as r,
        ):
            assert r.status == 503
            body = await r.json()
        assert body["status"] == "unready"
        assert body["checks"]["database"] == "down"


class TestMetrics:
    async def test_metrics_count_stations_and_messages_without_station_ids(
        self, csms: Running
    ) -> None:
        """Connected stations and handled messages show up; no label names a station."""
        _, before = await get(csms, "/metrics")
        heartbeats_before = sample_value(
            before, "csms_messages_total", direction="in", action="Heartbeat", outcome="ok"
        )
        async with SimStation(ws_url(csms), "METRIC-STATION-7") as cp:
            await cp.heartbeat()
            await cp.heartbeat()
            await cp.send_raw('[2, "x", "Heartbeat", {"bad": 1}]')
            _, text = await get(csms, "/metrics")
            assert sample_value(text, "csms_stations_connected", ocpp_version="1.6") >= 1
            assert (
                sample_value(
                    text, "csms_messages_total", direction="in", action="Heartbeat", outcome="ok"
                )
                == heartbeats_before + 2
            )
            assert (
                sample_value(
                    text,
                    "csms_messages_total",
                    direction="in",
                    action="Heartbeat",
                    outcome="FormationViolation",
                )
                >= 1
            )
        assert "METRIC-STATION-7" not in text
        _, after = await get(csms, "/metrics")
        assert sample_value(after, "csms_stations_connected", ocpp_version="1.6") < sample_value(
            text, "csms_stations_connected", ocpp_version="1.6"
        )

    async def test_invented_actions_do_not_create_new_series(self, csms: Running) -> None:
        """A station cannot grow the metrics with made-up action names."""
        async with SimStation(ws_url(csms), "NOISY") as cp:
            await cp.send_raw('[2, "x1", "Invented1", {}]')
            await cp.send_raw('[2, "x2", "Invented2", {}]')
        _, text = await get(csms, "/metrics")
        assert "Invented" not in text
        assert sample_value(text, "csms_messages_total", action="(unknown)") >= 2


class TestOperatorMetrics:
    async def test_sessions_commands_and_storage_move_the_metrics(self, csms: Running) -> None:
        """Active sessions, energy, commands, database latency and pool: all parse and move."""
        _, before = await get(csms, "/metrics")
        assert list(text_string_to_metric_families(before))  # parses as Prometheus text
        energy = sample_value(before, "csms_energy_delivered_wh_total")
        resets = sample_value(before, "csms_commands_total", command="reset", status="completed")
        queries = sample_value(before, "csms_storage_query_seconds_count")
        commits = sample_value(before, "csms_storage_commit_seconds_count")
        wakeups = sample_value(before, "csms_event_loop_lag_seconds_count")
        async with SimStation(ws_url(csms), "METRIC-TX") as cp:
            await cp.boot()
            transaction_id = await cp.start(1, "TAG-M", 10_000)
            _, during = await get(csms, "/metrics")
            assert sample_value(during, "csms_transactions_active") == 1
            await cp.stop(transaction_id, 12_500)
            async with (
                aiohttp.ClientSession() as session,
                session.post(
                    http_url(csms, "/api/v1/stations/METRIC-TX/commands/reset"),
                    json={"type": "soft"},
                ) as r,
            ):
                assert r.status == 200
        _, after = await get(csms, "/metrics")
        assert sample_value(after, "csms_transactions_active") == 0
        assert sample_value(after, "csms_energy_delivered_wh_total") == energy + 2_500
        assert (
            sample_value(after, "csms_commands_total", command="reset", status="completed")
            == resets + 1
        )
        assert sample_value(after, "csms_storage_query_seconds_count") > queries
        assert sample_value(after, "csms_storage_commit_seconds_count") > commits

        async def loop_watched() -> bool:
            _, text = await get(csms, "/metrics")
            return sample_value(text, "csms_event_loop_lag_seconds_count") > wakeups

        await poll_until(loop_watched, within=2.0, every=0.1)
        # Without a broker the outbox backlog is still measured (events wait there).
        assert sample_value(after, "csms_outbox_pending_events") > 0
        if csms.storage.dialect == "postgresql":
            assert sample_value(after, "csms_db_pool_connections", state="max") == 10
            assert sample_value(after, "csms_db_pool_connections", state="open") >= 1
