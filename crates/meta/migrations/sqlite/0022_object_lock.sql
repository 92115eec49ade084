-- Object Lock. A bucket's configuration (`object_lock`, JSON: its default retention) is set
-- once Object Lock is enabled and never removed. Each version keeps its own retention
-- (`lock_mode` GOVERNANCE or COMPLIANCE, `lock_until_ms`) and legal hold (`legal_hold`: NULL
-- when never set, else 0 or 1); a multipart upload keeps what its creation asked for.
ALTER TABLE buckets ADD COLUMN object_lock TEXT;
ALTER TABLE objects ADD COLUMN lock_mode TEXT;
ALTER TABLE objects ADD COLUMN lock_until_ms INTEGER;
ALTER TABLE objects ADD COLUMN legal_hold INTEGER;
ALTER TABLE object_versions ADD COLUMN lock_mode TEXT;
ALTER TABLE object_versions ADD COLUMN lock_until_ms INTEGER;
ALTER TABLE object_versions ADD COLUMN legal_hold INTEGER;
ALTER TABLE uploads ADD COLUMN lock_mode TEXT;
ALTER TABLE uploads ADD COLUMN lock_until_ms INTEGER;
ALTER TABLE uploads ADD COLUMN legal_hold INTEGER;

-- The move of a replaced version into the history carries its lock (0021's trigger, with the
-- lock columns).
DROP TRIGGER objects_version_replaced;
CREATE TRIGGER objects_version_replaced AFTER UPDATE OF version_id ON objects
WHEN old.version_id <> new.version_id
BEGIN
    INSERT INTO object_versions (seq, bucket, key, version_id, blob_id, size, etag, modified_ms, headers, user_meta,
        tags, parts_count, part_sizes, sensitivity, scan_partial, sensitivity_tagged, quarantined, versioned,
        lock_mode, lock_until_ms, legal_hold, delete_marker)
    SELECT old.seq, old.bucket, old.key, old.version_id, old.blob_id, old.size, old.etag, old.modified_ms, old.headers,
        old.user_meta, old.tags, old.parts_count, old.part_sizes, old.sensitivity, old.scan_partial,
        old.sensitivity_tagged, old.quarantined, old.versioned, old.lock_mode, old.lock_until_ms, old.legal_hold, 0
    WHERE old.versioned OR new.versioned;
    INSERT OR IGNORE INTO released_blobs (blob_id) SELECT old.blob_id WHERE NOT (old.versioned OR new.versioned);
    DELETE FROM scan_queue
    WHERE NOT (old.versioned OR new.versioned)
      AND bucket = old.bucket AND key = old.key AND version_id = old.version_id AND dead = 0;
END;

-- The last line of defence: a version under a legal hold or an unexpired COMPLIANCE retention
-- never leaves the store, whatever asks (the service refuses first, with GOVERNANCE too; these
-- catch any path that forgot). Moving between the two tables is not leaving.
CREATE TRIGGER objects_locked_deleted BEFORE DELETE ON objects
WHEN (old.legal_hold = 1 OR (old.lock_mode = 'COMPLIANCE'
        AND old.lock_until_ms > CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER)))
     AND NOT EXISTS (SELECT 1 FROM object_versions v
                     WHERE v.bucket = old.bucket AND v.key = old.key AND v.version_id = old.version_id)
BEGIN
    SELECT RAISE(ABORT, 'latchkey: object version locked');
END;
CREATE TRIGGER objects_locked_replaced BEFORE UPDATE OF version_id ON objects
WHEN old.version_id <> new.version_id AND NOT (old.versioned OR new.versioned)
     AND (old.legal_hold = 1 OR (old.lock_mode = 'COMPLIANCE'
        AND old.lock_until_ms > CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER)))
BEGIN
    SELECT RAISE(ABORT, 'latchkey: object version locked');
END;
CREATE TRIGGER object_versions_locked_deleted BEFORE DELETE ON object_versions
WHEN (old.legal_hold = 1 OR (old.lock_mode = 'COMPLIANCE'
        AND old.lock_until_ms > CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER)))
     AND NOT EXISTS (SELECT 1 FROM objects o
                     WHERE o.bucket = old.bucket AND o.key = old.key AND o.version_id = old.version_id)
BEGIN
    SELECT RAISE(ABORT, 'latchkey: object version locked');
END;
