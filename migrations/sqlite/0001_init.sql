-- 0001_init: the initial schema (SQLite).
-- Kept in step with postgres/0001_init.sql: same tables, columns and indexes.
-- Timestamps are fixed-width ISO-8601 UTC text ('2024-05-01T12:00:00.000000+00:00'),
-- so text order is time order; JSON columns are text.

CREATE TABLE schema_migrations (
    version     INTEGER PRIMARY KEY,
    name        TEXT NOT NULL,
    applied_at  TEXT NOT NULL
);

-- A row exists once a station is registered (or, robustly, once it spoke).
CREATE TABLE stations (
    id                TEXT PRIMARY KEY,
    password_hash     TEXT,
    security_profile  INTEGER NOT NULL DEFAULT 1,
    ocpp_version      TEXT,
    vendor            TEXT,
    model             TEXT,
    serial_number     TEXT,
    firmware_version  TEXT,
    boot_info         TEXT NOT NULL DEFAULT '{}',
    registered_at     TEXT,
    last_boot_at      TEXT,
    last_seen_at      TEXT
);

CREATE TABLE connectors (
    station_id         TEXT NOT NULL,
    evse_id            INTEGER NOT NULL,
    connector_id       INTEGER NOT NULL,
    status             TEXT NOT NULL,
    error_code         TEXT,
    info               TEXT,
    vendor_id          TEXT,
    vendor_error_code  TEXT,
    updated_at         TEXT NOT NULL,
    PRIMARY KEY (station_id, evse_id, connector_id)
);

CREATE TABLE id_tokens (
    id_token    TEXT PRIMARY KEY,
    status      TEXT NOT NULL,
    type        TEXT NOT NULL,
    expires_at  TEXT,
    group_id    TEXT,
    updated_at  TEXT NOT NULL
);

CREATE TABLE transactions (
    id              INTEGER PRIMARY KEY,
    station_id      TEXT NOT NULL,
    transaction_id  TEXT NOT NULL,
    evse_id         INTEGER NOT NULL,
    connector_id    INTEGER NOT NULL,
    id_token        TEXT,
    meter_start_wh  REAL,
    meter_stop_wh   REAL,
    energy_wh       REAL,
    started_at      TEXT NOT NULL,
    ended_at        TEXT,
    stop_reason     TEXT,
    charging_state  TEXT,
    seq_no          INTEGER,
    last_meter_wh   REAL,
    anomalies       TEXT NOT NULL DEFAULT '[]',
    ocpp_version    TEXT NOT NULL,
    updated_at      TEXT NOT NULL,
    UNIQUE (station_id, transaction_id)
);
CREATE INDEX transactions_active ON transactions (station_id, evse_id, connector_id)
    WHERE ended_at IS NULL;
CREATE INDEX transactions_started_at ON transactions (started_at);
-- 1.6 ids are unique across the CSMS: looked up without the station id.
CREATE INDEX transactions_ocpp16_id ON transactions (transaction_id) WHERE ocpp_version = '1.6';

-- 1.6 transaction ids: SQLite has no sequences, so one row counts, bumped in
-- a write transaction (which SQLite serialises across processes too); the
-- CHECK stops it rather than wrap past int32.
CREATE TABLE ocpp16_transaction_numbers (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    last_value  INTEGER NOT NULL CHECK (last_value BETWEEN 0 AND 2147483647)
);
INSERT INTO ocpp16_transaction_numbers (id, last_value) VALUES (1, 0);

CREATE TABLE meter_samples (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    station_id      TEXT NOT NULL,
    transaction_id  TEXT,
    evse_id         INTEGER NOT NULL,
    timestamp       TEXT NOT NULL,
    measurand       TEXT NOT NULL,
    value           REAL NOT NULL,
    unit            TEXT,
    phase           TEXT,
    context         TEXT,
    location        TEXT
);
CREATE INDEX meter_samples_by_transaction ON meter_samples (station_id, transaction_id);

CREATE TABLE station_notifications (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    station_id  TEXT NOT NULL,
    action      TEXT NOT NULL,
    payload     TEXT NOT NULL,
    at          TEXT NOT NULL
);
CREATE INDEX station_notifications_by_station ON station_notifications (station_id, action);

-- The transactional outbox: rows commit with the state change they report;
-- the relay publishes pending rows in seq order and marks them delivered.
-- AUTOINCREMENT: a seq is never reused, even after pruning the newest rows.
CREATE TABLE outbox (
    seq           INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id      TEXT NOT NULL UNIQUE,
    type          TEXT NOT NULL,
    station_id    TEXT NOT NULL,
    ocpp_version  TEXT NOT NULL,
    occurred_at   TEXT NOT NULL,
    recorded_at   TEXT NOT NULL,
    data          TEXT NOT NULL,
    delivered_at  TEXT
);
CREATE INDEX outbox_pending ON outbox (seq) WHERE delivered_at IS NULL;
CREATE INDEX outbox_delivered_at ON outbox (delivered_at) WHERE delivered_at IS NOT NULL;
