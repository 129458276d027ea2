-- 0011: the heartbeat interval a station accepted through the CSMS; kept in
-- step with postgres/0011_heartbeat_interval.sql. NULL: never set.
ALTER TABLE stations ADD COLUMN heartbeat_interval INTEGER;
