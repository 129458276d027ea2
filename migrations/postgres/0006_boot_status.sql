-- 0006: what a station's BootNotification is answered (Accepted, Pending,
-- Rejected), set by the operator per registration.
ALTER TABLE stations ADD COLUMN boot_status TEXT NOT NULL DEFAULT 'Accepted';
