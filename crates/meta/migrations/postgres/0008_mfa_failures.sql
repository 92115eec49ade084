-- Failed MFA codes per device, counted in the store so that every replica sees the same count:
-- after too many failures within a window a device accepts no code, on any replica.
ALTER TABLE iam_mfa_devices ADD COLUMN failures BIGINT NOT NULL DEFAULT 0;
ALTER TABLE iam_mfa_devices ADD COLUMN failures_since_ms BIGINT NOT NULL DEFAULT 0;
