-- 0010: the answers to stations' CALLs, durable with their effects
-- (docs/adr/0012-durable-answers.md). A station that lost an answer (the
-- CSMS was killed, or it reconnected to another process) resends the CALL
-- with the same message id; the unit of work that handles it again finds
-- its answer here and is not applied, so nothing is booked twice and a
-- resent StartTransaction gets the same transactionId.
--
-- One row per station and action: the last CALL of that action a station
-- sent, whose answer it may not have received (a station has one CALL
-- outstanding, and resends it before it sends the next of its kind). The
-- upsert changes no indexed column, so it is a HOT update; the table stays
-- as small as stations x actions. Rows are pruned after a day.
CREATE TABLE call_answers (
    station_id      text NOT NULL,
    action          text NOT NULL,
    message_id      text NOT NULL,
    request_digest  text NOT NULL,
    answer          jsonb NOT NULL,
    answered_at     timestamptz NOT NULL,
    PRIMARY KEY (station_id, action)
);

-- A group-commit batch with answers (the document of csms_apply_batch plus
-- "answers": [[station_id, action, message_id, request_digest, answer,
-- answered_at], ...], sorted by station and action). The answers are
-- upserted first; one whose stored row has the same message id and digest
-- was answered before: the function raises csms_calls_answered_before, its
-- DETAIL the stored answers as [[station_id, action, answer], ...], and so
-- applies nothing of the batch (the adapter applies the other units again).
-- Otherwise it applies the rest with csms_apply_batch, in the same statement.
CREATE FUNCTION csms_apply_answered_batch(batch jsonb) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    unchanged jsonb;
    stored jsonb;
BEGIN
    WITH wanted AS (
        SELECT r->>0 AS station_id, r->>1 AS action, r->>2 AS message_id,
               r->>3 AS request_digest, r->4 AS answer, (r->>5)::timestamptz AS answered_at, n
        FROM jsonb_array_elements(batch->'answers') WITH ORDINALITY AS e(r, n)
    ), written AS (
        INSERT INTO call_answers (station_id, action, message_id, request_digest, answer,
                                  answered_at)
        SELECT station_id, action, message_id, request_digest, answer, answered_at
        FROM wanted ORDER BY n
        ON CONFLICT (station_id, action) DO UPDATE SET
            message_id = EXCLUDED.message_id, request_digest = EXCLUDED.request_digest,
            answer = EXCLUDED.answer, answered_at = EXCLUDED.answered_at
        WHERE call_answers.message_id <> EXCLUDED.message_id
            OR call_answers.request_digest <> EXCLUDED.request_digest
        RETURNING station_id, action
    )
    SELECT jsonb_agg(jsonb_build_array(w.station_id, w.action)) INTO unchanged
    FROM wanted w
    WHERE NOT EXISTS (
        SELECT 1 FROM written x WHERE x.station_id = w.station_id AND x.action = w.action
    );
    IF unchanged IS NOT NULL THEN
        -- A new statement, so a new snapshot: it sees the rows the upsert left.
        SELECT jsonb_agg(jsonb_build_array(a.station_id, a.action, a.answer)) INTO stored
        FROM call_answers a
        JOIN jsonb_array_elements(unchanged) AS k(r)
            ON a.station_id = k.r->>0 AND a.action = k.r->>1;
        RAISE EXCEPTION 'csms_calls_answered_before' USING DETAIL = stored::text;
    END IF;
    PERFORM csms_apply_batch(batch - 'answers');
END
$$;
