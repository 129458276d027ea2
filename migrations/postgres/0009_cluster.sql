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
    IF batch ? 'booted' THEN
        INSERT INTO stations (id, ocpp_version, vendor, model, serial_number,
                              firmware_version, boot_info, last_boot_at, last_seen_at)
        SELECT r->>0, r->>1, r->>2, r->>3, r->>4, r->>5, NULLIF(r->6, 'null'),
               (r->>7)::timestamptz, (r->>8)::timestamptz
        FROM jsonb_array_elements(batch->'booted') WITH ORDINALITY AS e(r, n)
        WHERE EXISTS (SELECT 1 FROM stations s WHERE s.id = r->>0) ORDER BY n
        ON CONFLICT (id) DO UPDATE SET
            ocpp_version = EXCLUDED.ocpp_version, vendor = EXCLUDED.vendor,
            model = EXCLUDED.model, serial_number = EXCLUDED.serial_number,
            firmware_version = EXCLUDED.firmware_version, boot_info = EXCLUDED.boot_info,
            last_boot_at = EXCLUDED.last_boot_at,
            last_seen_at = GREATEST(stations.last_seen_at, EXCLUDED.last_seen_at);
    END IF;

    IF batch ? 'seen' THEN
        INSERT INTO stations (id, ocpp_version, last_seen_at)
        SELECT r->>0, r->>1, (r->>2)::timestamptz
        FROM jsonb_array_elements(batch->'seen') WITH ORDINALITY AS e(r, n)
        WHERE EXISTS (SELECT 1 FROM stations s WHERE s.id = r->>0) ORDER BY n
        ON CONFLICT (id) DO UPDATE SET
            ocpp_version = EXCLUDED.ocpp_version,
            last_seen_at = GREATEST(stations.last_seen_at, EXCLUDED.last_seen_at);
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
