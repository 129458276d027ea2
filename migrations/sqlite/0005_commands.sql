-- 0005: commands the CSMS sends to stations, and the station state their
-- answers leave behind (SQLite). Kept in step with postgres/0005_commands.sql.

-- One row per CSMS-initiated CALL (REST API, RabbitMQ): queued, sent, and its
-- outcome. Secrets (passwords) are masked in request, payload and response.
CREATE TABLE commands (
    id            TEXT PRIMARY KEY,
    station_id    TEXT NOT NULL,
    name          TEXT,
    action        TEXT,
    ocpp_version  TEXT,
    request       TEXT NOT NULL,
    payload       TEXT,
    status        TEXT NOT NULL,
    response      TEXT,
    error         TEXT,
    source        TEXT NOT NULL,
    created_at    TEXT NOT NULL,
    expires_at    TEXT,
    sent_at       TEXT,
    completed_at  TEXT
);
CREATE INDEX commands_by_station ON commands (station_id, created_at);
-- Queued commands are read per station (on connect) and by expiry (the sweeper).
CREATE INDEX commands_queued ON commands (station_id, created_at) WHERE status = 'queued';
CREATE INDEX commands_queued_expiry ON commands (expires_at) WHERE status = 'queued';

-- OCPP 1.6 configuration keys (GetConfiguration, accepted ChangeConfiguration).
CREATE TABLE station_configuration (
    station_id  TEXT NOT NULL,
    key         TEXT NOT NULL,
    value       TEXT,
    readonly    INTEGER,
    updated_at  TEXT NOT NULL,
    PRIMARY KEY (station_id, key)
);

-- Reservations a station accepted (ReserveNow), until cancelled.
CREATE TABLE reservations (
    station_id      TEXT NOT NULL,
    reservation_id  INTEGER NOT NULL,
    evse_id         INTEGER NOT NULL,
    id_token        TEXT NOT NULL,
    expires_at      TEXT NOT NULL,
    status          TEXT NOT NULL,
    updated_at      TEXT NOT NULL,
    PRIMARY KEY (station_id, reservation_id)
);

-- Charging profiles a station accepted (SetChargingProfile), as sent.
CREATE TABLE charging_profiles (
    station_id   TEXT NOT NULL,
    profile_id   INTEGER NOT NULL,
    evse_id      INTEGER NOT NULL,
    stack_level  INTEGER NOT NULL,
    purpose      TEXT NOT NULL,
    profile      TEXT NOT NULL,
    updated_at   TEXT NOT NULL,
    PRIMARY KEY (station_id, profile_id)
);

-- The local authorization list version (GetLocalListVersion, SendLocalList).
ALTER TABLE stations ADD COLUMN local_list_version INTEGER;
