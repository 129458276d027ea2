-- 0011: the heartbeat interval a station accepted through the CSMS (a
-- ChangeConfiguration or SetVariables of HeartbeatInterval); its BootNotification
-- is answered with it instead of CSMS_HEARTBEAT_INTERVAL. NULL: never set.
ALTER TABLE stations ADD COLUMN heartbeat_interval integer;
