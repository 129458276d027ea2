-- 0008: nothing to do on SQLite. On PostgreSQL this adds csms_apply_batch, a
-- group-commit batch in one round trip; SQLite runs in-process, where a
-- statement costs no round trip, so its adapter keeps one executemany per
-- kind. The version exists here so both dialects carry the same list.
SELECT 1;
