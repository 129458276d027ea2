-- 0012: what a transaction is linked to. id_token_status: what the CSMS last
-- answered for its id token (a reboot closes the open sessions it was not
-- Accepted for, docs/billing.md); remote_start_id: on 2.0.1 the
-- remoteStartId of the RequestStartTransaction that led to it.
ALTER TABLE transactions ADD COLUMN id_token_status TEXT;
ALTER TABLE transactions ADD COLUMN remote_start_id INTEGER;
