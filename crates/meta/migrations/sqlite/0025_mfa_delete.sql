-- MFA Delete: while it is on (1), changing the bucket's versioning state and deleting a version
-- for good need a code from the caller's MFA device (crates/s3/src/mfa_delete.rs).
ALTER TABLE buckets ADD COLUMN mfa_delete INTEGER NOT NULL DEFAULT 0;
