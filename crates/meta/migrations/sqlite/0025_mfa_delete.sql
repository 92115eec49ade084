-- MFA Delete: the MFA device it was turned on with (its serial, and its creation time, which a
-- device deleted and created again under the same serial does not share), NULL while it is off.
-- While it is on, changing the bucket's versioning state and deleting a version for good need a
-- code from that device (crates/s3/src/mfa_delete.rs); lifecycle deletes no version for good.
ALTER TABLE buckets ADD COLUMN mfa_delete_device TEXT;
ALTER TABLE buckets ADD COLUMN mfa_delete_device_created_ms BIGINT;
