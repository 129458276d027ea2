-- 0003: OCPP 2.0.1 TransactionEvent sequence numbers and the device model (PostgreSQL).
-- Kept in step with sqlite/0003_transaction_events_device_model.sql.

-- One row per TransactionEvent a station sent: the seqNos seen per
-- transaction (duplicates are answered and ignored; gaps are reported).
CREATE TABLE transaction_events (
    station_id      TEXT NOT NULL,
    transaction_id  TEXT NOT NULL,
    seq_no          BIGINT NOT NULL,
    event_type      TEXT NOT NULL,
    trigger_reason  TEXT,
    occurred_at     TIMESTAMPTZ NOT NULL,
    offline         BOOLEAN NOT NULL DEFAULT FALSE,
    recorded_at     TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (station_id, transaction_id, seq_no)
);

-- The device model a 2.0.1 station reported (NotifyReport): one row per
-- component / variable / attribute, the latest value wins.
CREATE TABLE device_model (
    station_id          TEXT NOT NULL,
    entry_key           TEXT NOT NULL,
    component           TEXT NOT NULL,
    component_instance  TEXT,
    evse_id             INTEGER,
    connector_id        INTEGER,
    variable            TEXT NOT NULL,
    variable_instance   TEXT,
    attribute_type      TEXT NOT NULL,
    value               TEXT,
    mutability          TEXT,
    characteristics     JSONB NOT NULL DEFAULT '{}',
    updated_at          TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (station_id, entry_key)
);
