-- 0007: one row per meter-values message instead of one per sampled value.
-- A MeterValues with six sampled values was six rows and twelve index
-- entries; as one row with the samples as a jsonb array it is a sixth of
-- the tuples and index work per message (docs/benchmarks.md). Each sample is
-- [timestamp (ISO 8601), measurand, value, unit, phase, context, location];
-- readings and their samples keep the order they arrived in (ORDER BY id).
CREATE TABLE meter_readings (
    id              bigserial PRIMARY KEY,
    station_id      text NOT NULL,
    transaction_id  text,
    evse_id         integer NOT NULL,
    samples         jsonb NOT NULL
);
CREATE INDEX meter_readings_by_transaction ON meter_readings (station_id, transaction_id);

INSERT INTO meter_readings (station_id, transaction_id, evse_id, samples)
SELECT station_id, transaction_id, evse_id,
       jsonb_build_array(jsonb_build_array(
           to_char(timestamp AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"+00:00"'),
           measurand, value, unit, phase, context, location))
FROM meter_samples ORDER BY id;

DROP TABLE meter_samples;
