-- 0001_init: the initial schema (PostgreSQL).
-- Kept in step with sqlite/0001_init.sql: same tables, columns and indexes.
-- Timestamps are timestamptz; JSON columns are jsonb.

CREATE TABLE schema_migrations (
    version     integer PRIMARY KEY,
    name        text NOT NULL,
    applied_at  timestamptz NOT NULL DEFAULT now()
);

-- A row exists once a station is registered (or, robustly, once it spoke).
CREATE TABLE stations (
    id                text PRIMARY KEY,
    password_hash     text,
    security_profile  integer NOT NULL DEFAULT 1,
    ocpp_version      text,
    vendor            text,
    model             text,
    serial_number     text,
    firmware_version  text,
    boot_info         jsonb NOT NULL DEFAULT '{}',
    registered_at     timestamptz,
    last_boot_at      timestamptz,
    last_seen_at      timestamptz
);

CREATE TABLE connectors (
    station_id         text NOT NULL,
    evse_id            integer NOT NULL,
    connector_id       integer NOT NULL,
    status             text NOT NULL,
    error_code         text,
    info               text,
    vendor_id          text,
    vendor_error_code  text,
    updated_at         timestamptz NOT NULL,
    PRIMARY KEY (station_id, evse_id, connector_id)
);

CREATE TABLE id_tokens (
    id_token    text PRIMARY KEY,
    status      text NOT NULL,
    type        text NOT NULL,
    expires_at  timestamptz,
    group_id    text,
    updated_at  timestamptz NOT NULL
);

CREATE TABLE transactions (
    id              bigserial PRIMARY KEY,
    station_id      text NOT NULL,
    transaction_id  text NOT NULL,
    evse_id         integer NOT NULL,
    connector_id    integer NOT NULL,
    id_token        text,
    meter_start_wh  double precision,
    meter_stop_wh   double precision,
    energy_wh       double precision,
    started_at      timestamptz NOT NULL,
    ended_at        timestamptz,
    stop_reason     text,
    charging_state  text,
    seq_no          integer,
    last_meter_wh   double precision,
    anomalies       jsonb NOT NULL DEFAULT '[]',
    ocpp_version    text NOT NULL,
    updated_at      timestamptz NOT NULL,
    UNIQUE (station_id, transaction_id)
);
CREATE INDEX transactions_active ON transactions (station_id, evse_id, connector_id)
    WHERE ended_at IS NULL;
CREATE INDEX transactions_started_at ON transactions (started_at);
-- 1.6 ids are unique across the CSMS: looked up without the station id.
CREATE INDEX transactions_ocpp16_id ON transactions (transaction_id) WHERE ocpp_version = '1.6';

-- 1.6 transaction ids: a sequence never hands out a number twice, also to
-- several processes, and stops (errors) rather than wrap past int32.
CREATE SEQUENCE ocpp16_transaction_numbers AS integer START 1 MINVALUE 1 MAXVALUE 2147483647 NO CYCLE;

CREATE TABLE meter_samples (
    id              bigserial PRIMARY KEY,
    station_id      text NOT NULL,
    transaction_id  text,
    evse_id         integer NOT NULL,
    timestamp       timestamptz NOT NULL,
    measurand       text NOT NULL,
    value           double precision NOT NULL,
    unit            text,
    phase           text,
    context         text,
    location        text
);
CREATE INDEX meter_samples_by_transaction ON meter_samples (station_id, transaction_id);

CREATE TABLE station_notifications (
    id          bigserial PRIMARY KEY,
    station_id  text NOT NULL,
    action      text NOT NULL,
    payload     jsonb NOT NULL,
    at          timestamptz NOT NULL
);
CREATE INDEX station_notifications_by_station ON station_notifications (station_id, action);

-- The transactional outbox: rows commit with the state change they report;
-- the relay publishes pending rows in seq order and marks them delivered.
CREATE TABLE outbox (
    seq           bigserial PRIMARY KEY,
    event_id      uuid NOT NULL UNIQUE,
    type          text NOT NULL,
    station_id    text NOT NULL,
    ocpp_version  text NOT NULL,
    occurred_at   timestamptz NOT NULL,
    recorded_at   timestamptz NOT NULL,
    data          jsonb NOT NULL,
    delivered_at  timestamptz
);
CREATE INDEX outbox_pending ON outbox (seq) WHERE delivered_at IS NULL;
CREATE INDEX outbox_delivered_at ON outbox (delivered_at) WHERE delivered_at IS NOT NULL;
