"""Every Prometheus collector, declared once. No label ever names a station."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info

REGISTRY = CollectorRegistry(auto_describe=True)

NODE = Info(
    "csms_node",
    "This process's name in a cluster (CSMS_NODE_ID): one series, value 1.",
    registry=REGISTRY,
)
STATIONS_CONNECTED = Gauge(
    "csms_stations_connected",
    "Stations with an open WebSocket, by protocol.",
    ["ocpp_version"],
    registry=REGISTRY,
)
MESSAGES = Counter(
    "csms_messages_total",
    "OCPP CALLs handled (in) and sent (out), by action and outcome.",
    ["direction", "action", "ocpp_version", "outcome"],
    registry=REGISTRY,
)
CALL_ERRORS = Counter(
    "csms_call_errors_total",
    "CALLERRORs sent to stations (direction=out) or received from them (in), by code.",
    ["direction", "code", "ocpp_version"],
    registry=REGISTRY,
)
HANDSHAKES_REJECTED = Counter(
    "csms_handshakes_rejected_total",
    "Station handshakes refused, by reason.",
    ["reason"],
    registry=REGISTRY,
)
CONNECTIONS = Counter(
    "csms_connections_total",
    "Station WebSocket connections opened (event=connect) and closed (disconnect).",
    ["event", "ocpp_version"],
    registry=REGISTRY,
)
HANDLER_SECONDS = Histogram(
    "csms_handler_seconds",
    "Time from a station's CALL arriving to its answer being sent, by action.",
    ["action", "ocpp_version"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
    registry=REGISTRY,
)
CALL_TIMEOUTS = Counter(
    "csms_call_timeouts_total",
    "CALLs the CSMS sent that the station did not answer in time.",
    ["action", "ocpp_version"],
    registry=REGISTRY,
)
COMMANDS = Counter(
    "csms_commands_total",
    "Commands to stations by command (neutral name or OCPP action) and status reached:"
    " queued, completed (answered), failed, expired.",
    ["command", "status"],
    registry=REGISTRY,
)
UNKNOWN_TRANSACTION_STOPS = Counter(
    "csms_unknown_transaction_stops_total",
    "Stops of transactions the CSMS never saw started, by whether their own meter"
    " readings made them billable (outcome=billed) or not (ignored).",
    ["ocpp_version", "outcome"],
    registry=REGISTRY,
)
TRANSACTIONS_ABANDONED = Counter(
    "csms_transactions_abandoned_total",
    "Sessions the CSMS closed without their stop because the evidence said they were over,"
    " by reason: superseded, after_reboot, available (docs/billing.md).",
    ["ocpp_version", "reason"],
    registry=REGISTRY,
)
TRANSACTIONS_ACTIVE = Gauge(
    "csms_transactions_active",
    "Charging sessions started and not ended, across the database (read at each scrape).",
    registry=REGISTRY,
)
ENERGY_DELIVERED = Counter(
    "csms_energy_delivered_wh_total",
    "Energy of the sessions this process booked as ended (transaction.ended energy_wh), in Wh.",
    registry=REGISTRY,
)
STORAGE_QUERY_SECONDS = Histogram(
    "csms_storage_query_seconds",
    "Duration of one database call as the event loop sees it (waiting for a connection or"
    " the SQLite thread included): reads, registry writes and group commits.",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 2.5),
    registry=REGISTRY,
)
DB_POOL_CONNECTIONS = Gauge(
    "csms_db_pool_connections",
    "PostgreSQL pool connections by state: open (in use or idle), idle, max (read at each"
    " scrape; absent on SQLite).",
    ["state"],
    registry=REGISTRY,
)
EVENT_LOOP_LAG = Histogram(
    "csms_event_loop_lag_seconds",
    "How much later than due the event loop woke a task sleeping 0.25 s: time every"
    " station's frame waited meanwhile, before any database or broker work.",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
    registry=REGISTRY,
)
STORAGE_BATCH_UNITS = Histogram(
    "csms_storage_batch_units",
    "Units of work committed per database transaction (group commit).",
    buckets=(1, 2, 5, 10, 25, 50, 100, 250, 500),
    registry=REGISTRY,
)
STORAGE_COMMIT_SECONDS = Histogram(
    "csms_storage_commit_seconds",
    "Duration of one group-commit database transaction.",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0),
    registry=REGISTRY,
)
OUTBOX_PENDING = Gauge(
    "csms_outbox_pending_events",
    "Outbox events not yet confirmed by the broker (counted up to 1,000,000).",
    registry=REGISTRY,
)
OUTBOX_OLDEST_PENDING_SECONDS = Gauge(
    "csms_outbox_oldest_pending_seconds",
    "Age of the oldest outbox event not yet confirmed by the broker (0 when none).",
    registry=REGISTRY,
)
EVENTS_PUBLISHED = Counter(
    "csms_events_published_total",
    "Events the broker confirmed, by event type (a resend after a failure counts again).",
    ["type"],
    registry=REGISTRY,
)
EVENT_PUBLISH_FAILURES = Counter(
    "csms_event_publish_failures_total",
    "Events whose publish was not confirmed (broker refused it or the link broke); resent.",
    registry=REGISTRY,
)
EVENT_CONFIRM_SECONDS = Histogram(
    "csms_event_confirm_seconds",
    "Time from publishing a batch of events to the broker's last confirm of it.",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
    registry=REGISTRY,
)
OUTBOX_RELAY_LEADER = Gauge(
    "csms_outbox_relay_leader",
    "1 while this process is the one relay publishing the outbox, else 0 (standby).",
    registry=REGISTRY,
)
HANDSHAKES_IN_FLIGHT = Gauge(
    "csms_handshakes_in_flight",
    "Station handshakes being decided now (registration lookup, password check).",
    registry=REGISTRY,
)
HANDSHAKES_QUEUED = Gauge(
    "csms_handshakes_queued",
    "Station handshakes waiting for a slot or for their turn under the handshake rate.",
    registry=REGISTRY,
)
MESSAGES_DELAYED = Counter(
    "csms_messages_delayed_total",
    "Station frames held back because the station exceeded its message rate.",
    ["ocpp_version"],
    registry=REGISTRY,
)
CONNECTIONS_CLOSED_FOR_ABUSE = Counter(
    "csms_connections_closed_for_abuse_total",
    "Station connections closed for misbehaving (1008 rate, 1003 binary frames), by reason.",
    ["reason"],
    registry=REGISTRY,
)
TOLERANCES_APPLIED = Counter(
    "csms_tolerances_applied_total",
    "Deviations from OCPP accepted from a station because a tolerance is on, by tolerance.",
    ["tolerance"],
    registry=REGISTRY,
)
