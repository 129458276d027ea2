-- 0004: the password a station used before a rotation stays valid until the
-- station has reconnected with the new one (no lock-out while it is offline).
ALTER TABLE stations ADD COLUMN previous_password_hash TEXT;
