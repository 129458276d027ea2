-- 0007: one row per meter-values message instead of one per sampled value
-- (as in migrations/postgres/0007). Each sample of the JSON array `samples`
-- is [timestamp (ISO 8601, UTC), measurand, value, unit, phase, context, location].
CREATE TABLE meter_readings (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    station_id      TEXT NOT NULL,
    transaction_id  TEXT,
    evse_id         INTEGER NOT NULL,
    samples         TEXT NOT NULL
);
CREATE INDEX meter_readings_by_transaction ON meter_readings (station_id, transaction_id);

INSERT INTO meter_readings (station_id, transaction_id, evse_id, samples)
SELECT station_id, transaction_id, evse_id,
       json_array(json_array(timestamp, measurand, value, unit, phase, context, location))
FROM meter_samples ORDER BY id;

DROP TABLE meter_samples;
