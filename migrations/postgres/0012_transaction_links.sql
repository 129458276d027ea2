-- 0012: what a transaction is linked to. id_token_status: what the CSMS last
-- answered for its id token (a reboot closes the open sessions it was not
-- Accepted for, docs/billing.md); remote_start_id: on 2.0.1 the
-- remoteStartId of the RequestStartTransaction that led to it.
ALTER TABLE transactions ADD COLUMN id_token_status text;
ALTER TABLE transactions ADD COLUMN remote_start_id integer;

-- The batch function of migration 0008 (renamed csms_apply_batch_0008 by
-- 0009, which calls it for all but boots and seen times), its transaction
-- rows two columns wider (r->>17 id_token_status, r->>18 remote_start_id);
-- the rest unchanged.
CREATE OR REPLACE FUNCTION csms_apply_batch_0008(batch jsonb) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    IF batch ? 'booted' THEN
        INSERT INTO stations (id, ocpp_version, vendor, model, serial_number,
                              firmware_version, boot_info, last_boot_at, last_seen_at)
        SELECT r->>0, r->>1, r->>2, r->>3, r->>4, r->>5, NULLIF(r->6, 'null'),
               (r->>7)::timestamptz, (r->>8)::timestamptz
        FROM jsonb_array_elements(batch->'booted') WITH ORDINALITY AS e(r, n) ORDER BY n
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
        FROM jsonb_array_elements(batch->'seen') WITH ORDINALITY AS e(r, n) ORDER BY n
        ON CONFLICT (id) DO UPDATE SET
            ocpp_version = EXCLUDED.ocpp_version,
            last_seen_at = GREATEST(stations.last_seen_at, EXCLUDED.last_seen_at);
    END IF;

    IF batch ? 'started' THEN
        INSERT INTO transactions (station_id, transaction_id, evse_id, connector_id, id_token,
                                  meter_start_wh, meter_stop_wh, energy_wh, started_at,
                                  ended_at, stop_reason, charging_state, seq_no,
                                  last_meter_wh, anomalies, ocpp_version, updated_at,
                                  id_token_status, remote_start_id)
        SELECT r->>0, r->>1, (r->>2)::integer, (r->>3)::integer, r->>4,
               (r->>5)::double precision, (r->>6)::double precision,
               (r->>7)::double precision, (r->>8)::timestamptz, (r->>9)::timestamptz,
               r->>10, r->>11, (r->>12)::integer, (r->>13)::double precision,
               NULLIF(r->14, 'null'), r->>15, (r->>16)::timestamptz, r->>17,
               (r->>18)::integer
        FROM jsonb_array_elements(batch->'started') WITH ORDINALITY AS e(r, n) ORDER BY n;
    END IF;

    IF batch ? 'changed' THEN
        INSERT INTO transactions (station_id, transaction_id, evse_id, connector_id, id_token,
                                  meter_start_wh, meter_stop_wh, energy_wh, started_at,
                                  ended_at, stop_reason, charging_state, seq_no,
                                  last_meter_wh, anomalies, ocpp_version, updated_at,
                                  id_token_status, remote_start_id)
        SELECT r->>0, r->>1, (r->>2)::integer, (r->>3)::integer, r->>4,
               (r->>5)::double precision, (r->>6)::double precision,
               (r->>7)::double precision, (r->>8)::timestamptz, (r->>9)::timestamptz,
               r->>10, r->>11, (r->>12)::integer, (r->>13)::double precision,
               NULLIF(r->14, 'null'), r->>15, (r->>16)::timestamptz, r->>17,
               (r->>18)::integer
        FROM jsonb_array_elements(batch->'changed') WITH ORDINALITY AS e(r, n) ORDER BY n
        ON CONFLICT (station_id, transaction_id) DO UPDATE SET
            evse_id = EXCLUDED.evse_id, connector_id = EXCLUDED.connector_id,
            id_token = EXCLUDED.id_token, meter_start_wh = EXCLUDED.meter_start_wh,
            meter_stop_wh = EXCLUDED.meter_stop_wh, energy_wh = EXCLUDED.energy_wh,
            started_at = EXCLUDED.started_at, ended_at = EXCLUDED.ended_at,
            stop_reason = EXCLUDED.stop_reason, charging_state = EXCLUDED.charging_state,
            seq_no = EXCLUDED.seq_no, last_meter_wh = EXCLUDED.last_meter_wh,
            anomalies = EXCLUDED.anomalies, ocpp_version = EXCLUDED.ocpp_version,
            updated_at = EXCLUDED.updated_at, id_token_status = EXCLUDED.id_token_status,
            remote_start_id = EXCLUDED.remote_start_id;
    END IF;

    IF batch ? 'statuses' THEN
        INSERT INTO connectors (station_id, evse_id, connector_id, status, error_code, info,
                                vendor_id, vendor_error_code, updated_at)
        SELECT r->>0, (r->>1)::integer, (r->>2)::integer, r->>3, r->>4, r->>5, r->>6, r->>7,
               (r->>8)::timestamptz
        FROM jsonb_array_elements(batch->'statuses') WITH ORDINALITY AS e(r, n) ORDER BY n
        ON CONFLICT (station_id, evse_id, connector_id) DO UPDATE SET
            status = EXCLUDED.status, error_code = EXCLUDED.error_code, info = EXCLUDED.info,
            vendor_id = EXCLUDED.vendor_id, vendor_error_code = EXCLUDED.vendor_error_code,
            updated_at = EXCLUDED.updated_at;
    END IF;

    IF batch ? 'readings' THEN
        INSERT INTO meter_readings (station_id, transaction_id, evse_id, samples)
        SELECT r->>0, r->>1, (r->>2)::integer, NULLIF(r->3, 'null')
        FROM jsonb_array_elements(batch->'readings') WITH ORDINALITY AS e(r, n) ORDER BY n;
    END IF;

    IF batch ? 'notified' THEN
        INSERT INTO station_notifications (station_id, action, payload, at)
        SELECT r->>0, r->>1, NULLIF(r->2, 'null'), (r->>3)::timestamptz
        FROM jsonb_array_elements(batch->'notified') WITH ORDINALITY AS e(r, n) ORDER BY n;
    END IF;

    IF batch ? 'transaction_events' THEN
        INSERT INTO transaction_events (station_id, transaction_id, seq_no, event_type,
                                        trigger_reason, occurred_at, offline, recorded_at)
        SELECT r->>0, r->>1, (r->>2)::bigint, r->>3, r->>4, (r->>5)::timestamptz,
               (r->>6)::boolean, (r->>7)::timestamptz
        FROM jsonb_array_elements(batch->'transaction_events') WITH ORDINALITY AS e(r, n)
        ORDER BY n;
    END IF;

    IF batch ? 'device_model' THEN
        INSERT INTO device_model (station_id, entry_key, component, component_instance,
                                  evse_id, connector_id, variable, variable_instance,
                                  attribute_type, value, mutability, characteristics,
                                  updated_at)
        SELECT r->>0, r->>1, r->>2, r->>3, (r->>4)::integer, (r->>5)::integer, r->>6, r->>7,
               r->>8, r->>9, r->>10, NULLIF(r->11, 'null'), (r->>12)::timestamptz
        FROM jsonb_array_elements(batch->'device_model') WITH ORDINALITY AS e(r, n) ORDER BY n
        ON CONFLICT (station_id, entry_key) DO UPDATE SET
            value = EXCLUDED.value, mutability = EXCLUDED.mutability,
            characteristics = EXCLUDED.characteristics, updated_at = EXCLUDED.updated_at;
    END IF;

    IF batch ? 'device_model_values' THEN
        INSERT INTO device_model (station_id, entry_key, component, component_instance,
                                  evse_id, connector_id, variable, variable_instance,
                                  attribute_type, value, mutability, characteristics,
                                  updated_at)
        SELECT r->>0, r->>1, r->>2, r->>3, (r->>4)::integer, (r->>5)::integer, r->>6, r->>7,
               r->>8, r->>9, r->>10, NULLIF(r->11, 'null'), (r->>12)::timestamptz
        FROM jsonb_array_elements(batch->'device_model_values') WITH ORDINALITY AS e(r, n)
        ORDER BY n
        ON CONFLICT (station_id, entry_key) DO UPDATE SET
            value = EXCLUDED.value, updated_at = EXCLUDED.updated_at;
    END IF;

    IF batch ? 'configuration' THEN
        INSERT INTO station_configuration (station_id, key, value, readonly, updated_at)
        SELECT r->>0, r->>1, r->>2, (r->>3)::boolean, (r->>4)::timestamptz
        FROM jsonb_array_elements(batch->'configuration') WITH ORDINALITY AS e(r, n)
        ORDER BY n
        ON CONFLICT (station_id, key) DO UPDATE SET
            value = EXCLUDED.value,
            readonly = COALESCE(EXCLUDED.readonly, station_configuration.readonly),
            updated_at = EXCLUDED.updated_at;
    END IF;

    IF batch ? 'local_list_versions' THEN
        UPDATE stations SET local_list_version = (r->>1)::integer
        FROM jsonb_array_elements(batch->'local_list_versions') AS e(r)
        WHERE stations.id = r->>0;
    END IF;

    IF batch ? 'reservations' THEN
        INSERT INTO reservations (station_id, reservation_id, evse_id, id_token, expires_at,
                                  status, updated_at)
        SELECT r->>0, (r->>1)::integer, (r->>2)::integer, r->>3, (r->>4)::timestamptz,
               r->>5, (r->>6)::timestamptz
        FROM jsonb_array_elements(batch->'reservations') WITH ORDINALITY AS e(r, n) ORDER BY n
        ON CONFLICT (station_id, reservation_id) DO UPDATE SET
            evse_id = EXCLUDED.evse_id, id_token = EXCLUDED.id_token,
            expires_at = EXCLUDED.expires_at, status = EXCLUDED.status,
            updated_at = EXCLUDED.updated_at;
    END IF;

    IF batch ? 'events' THEN
        INSERT INTO outbox (event_id, type, station_id, ocpp_version, occurred_at,
                            recorded_at, data)
        SELECT (r->>0)::uuid, r->>1, r->>2, r->>3, (r->>4)::timestamptz,
               (r->>5)::timestamptz, NULLIF(r->6, 'null')
        FROM jsonb_array_elements(batch->'events') WITH ORDINALITY AS e(r, n) ORDER BY n;
    END IF;
END
$$;
