-- 0009: the cluster's view of who holds which station (docs/adr/0011-cluster.md).
-- A process (node) renews its lease; a connection row lives while its socket
-- is open. The newest epoch of a station is its current connection: an older
-- one (a half-open socket on another node) can only close its own row.

CREATE TABLE nodes (
    node_id     text PRIMARY KEY,
    started_at  timestamptz NOT NULL,
    seen_at     timestamptz NOT NULL
);

CREATE TABLE connections (
    station_id    text NOT NULL,
    epoch         bigint NOT NULL,
    node_id       text NOT NULL,
    ocpp_version  text NOT NULL,
    opened_at     timestamptz NOT NULL,
    PRIMARY KEY (station_id, epoch)
);
CREATE INDEX connections_node ON connections (node_id);

-- Epochs grow across the cluster, so a later connection always has the larger one.
CREATE SEQUENCE connection_epochs AS bigint START 1 MINVALUE 1;

-- A station's boot facts and last_seen_at now only update a registered row:
-- a station deleted while still connected (to this or another process) must
-- not be created again by its next write, with security profile 1 and no
-- password. The batch function of 0008 is kept under another name and does
-- the rest of the batch.
ALTER FUNCTION csms_apply_batch(jsonb) RENAME TO csms_apply_batch_0008;

CREATE FUNCTION csms_apply_batch(batch jsonb) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    -- UPDATE, not INSERT .. ON CONFLICT: an upsert racing a DELETE of the row
    -- inserts it again once the DELETE commits. Rows come one per station,
    -- sorted by id (the adapter's _by_key), so row locks are taken in one order.
    IF batch ? 'booted' THEN
        UPDATE stations s SET
            ocpp_version = r->>1, vendor = r->>2, model = r->>3, serial_number = r->>4,
            firmware_version = r->>5, boot_info = coalesce(NULLIF(r->6, 'null'), '{}'),
            last_boot_at = (r->>7)::timestamptz,
            last_seen_at = GREATEST(s.last_seen_at, (r->>8)::timestamptz)
        FROM jsonb_array_elements(batch->'booted') AS e(r)
        WHERE s.id = r->>0;
    END IF;

    IF batch ? 'seen' THEN
        UPDATE stations s SET
            ocpp_version = r->>1,
            last_seen_at = GREATEST(s.last_seen_at, (r->>2)::timestamptz)
        FROM jsonb_array_elements(batch->'seen') AS e(r)
        WHERE s.id = r->>0;
    END IF;

    PERFORM csms_apply_batch_0008(batch - 'booted' - 'seen');
END;
$$;

-- A rotated password waits here, sealed (AES-GCM under the key in secrets),
-- until the station logs in with it: any process the station reconnects to
-- delivers it (docs/security.md, "Passwords").
ALTER TABLE stations ADD COLUMN pending_password text;
CREATE TABLE secrets (
    name   text PRIMARY KEY,
    value  text NOT NULL
);
