-- 0010: the answers to stations' CALLs, durable with their effects (as in
-- migrations/postgres/0010, docs/adr/0012-durable-answers.md). One row per
-- station and action, upserted by the adapter in the batch's transaction
-- before anything else of it. PostgreSQL's csms_apply_answered_batch has no
-- counterpart here (SQLite runs in-process, statement by statement).
CREATE TABLE call_answers (
    station_id      TEXT NOT NULL,
    action          TEXT NOT NULL,
    message_id      TEXT NOT NULL,
    request_digest  TEXT NOT NULL,
    answer          TEXT NOT NULL,
    answered_at     TEXT NOT NULL,
    PRIMARY KEY (station_id, action)
);
