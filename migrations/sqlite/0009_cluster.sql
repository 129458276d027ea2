-- 0009: the cluster's view of who holds which station (docs/adr/0011-cluster.md).
-- Kept in step with postgres/0009_cluster.sql. On SQLite the CSMS is one
-- process; the tables still record its connections, so that a restart after
-- a crash closes the ones the crash left open (with their event).

CREATE TABLE nodes (
    node_id     TEXT PRIMARY KEY,
    started_at  TEXT NOT NULL,
    seen_at     TEXT NOT NULL
);

CREATE TABLE connections (
    station_id    TEXT NOT NULL,
    epoch         INTEGER NOT NULL,
    node_id       TEXT NOT NULL,
    ocpp_version  TEXT NOT NULL,
    opened_at     TEXT NOT NULL,
    PRIMARY KEY (station_id, epoch)
);
CREATE INDEX connections_node ON connections (node_id);

CREATE TABLE connection_epochs (last_value INTEGER NOT NULL);
INSERT INTO connection_epochs VALUES (0);

-- A rotated password waits here, sealed, until the station logs in with it.
ALTER TABLE stations ADD COLUMN pending_password TEXT;
CREATE TABLE secrets (
    name   TEXT PRIMARY KEY,
    value  TEXT NOT NULL
);
