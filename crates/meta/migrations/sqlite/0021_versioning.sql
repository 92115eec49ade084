-- Versioning. A bucket's state: NULL (never enabled), 'Enabled' or 'Suspended'. `objects` keeps
-- each key's current version, as before; `object_versions` keeps the others (noncurrent
-- versions and delete markers), numbered by `seq` in the order they left `objects` or were
-- made, so that a key's history reads newest first by `seq` descending.
--
-- `versioned` says whether a version was written with versioning enabled (clients see its
-- `version_id`) or is the key's "null" version (unversioned or suspended; clients see `null`).
-- Its internal `version_id` is unique all the same, so a share link made for a null version
-- stops working once that version is replaced.
ALTER TABLE buckets ADD COLUMN versioning TEXT;
ALTER TABLE objects ADD COLUMN versioned INTEGER NOT NULL DEFAULT 0;
-- A multipart object's part sizes (a JSON array), so GET ?partNumber= can serve one part.
ALTER TABLE objects ADD COLUMN part_sizes TEXT;
-- A current version's place in its key's history: NULL (above all of it) for one written as
-- current; kept for one made current again, so that a version's place never changes and a
-- listing that resumes at a place misses nothing.
ALTER TABLE objects ADD COLUMN seq INTEGER;

CREATE TABLE object_versions (
    seq                 INTEGER PRIMARY KEY AUTOINCREMENT,
    bucket              TEXT NOT NULL REFERENCES buckets(name),
    key                 TEXT NOT NULL,
    version_id          TEXT NOT NULL,
    blob_id             TEXT NOT NULL,
    size                INTEGER NOT NULL,
    etag                TEXT NOT NULL,
    modified_ms         INTEGER NOT NULL,
    headers             TEXT NOT NULL,
    user_meta           TEXT NOT NULL,
    tags                TEXT NOT NULL,
    parts_count         INTEGER,
    part_sizes          TEXT,
    sensitivity         TEXT,
    scan_partial        INTEGER NOT NULL DEFAULT 0,
    sensitivity_tagged  INTEGER NOT NULL DEFAULT 0,
    quarantined         INTEGER NOT NULL DEFAULT 0,
    versioned           INTEGER NOT NULL,
    delete_marker       INTEGER NOT NULL
);
CREATE UNIQUE INDEX object_versions_by_id ON object_versions (bucket, key, version_id);
CREATE INDEX object_versions_by_key ON object_versions (bucket, key, seq DESC);
CREATE INDEX object_versions_blob ON object_versions (blob_id);

-- A replaced version is kept when either it or its successor is versioned (S3: an enabled
-- bucket keeps everything; a suspended one replaces only the null version); otherwise its blob
-- is released and its scan unqueued, as before versioning.
DROP TRIGGER objects_release_replaced;
DROP TRIGGER objects_scan_unqueued_replaced;
CREATE TRIGGER objects_version_replaced AFTER UPDATE OF version_id ON objects
WHEN old.version_id <> new.version_id
BEGIN
    INSERT INTO object_versions (seq, bucket, key, version_id, blob_id, size, etag, modified_ms, headers, user_meta,
        tags, parts_count, part_sizes, sensitivity, scan_partial, sensitivity_tagged, quarantined, versioned,
        delete_marker)
    SELECT old.seq, old.bucket, old.key, old.version_id, old.blob_id, old.size, old.etag, old.modified_ms, old.headers,
        old.user_meta, old.tags, old.parts_count, old.part_sizes, old.sensitivity, old.scan_partial,
        old.sensitivity_tagged, old.quarantined, old.versioned, 0
    WHERE old.versioned OR new.versioned;
    INSERT OR IGNORE INTO released_blobs (blob_id) SELECT old.blob_id WHERE NOT (old.versioned OR new.versioned);
    DELETE FROM scan_queue
    WHERE NOT (old.versioned OR new.versioned)
      AND bucket = old.bucket AND key = old.key AND version_id = old.version_id AND dead = 0;
END;

-- A new null version replaces the key's noncurrent null version, if it has one.
CREATE TRIGGER objects_null_version_inserted AFTER INSERT ON objects
WHEN NOT new.versioned
BEGIN
    DELETE FROM object_versions WHERE bucket = new.bucket AND key = new.key AND NOT versioned;
END;
CREATE TRIGGER objects_null_version_replaced AFTER UPDATE OF version_id ON objects
WHEN old.version_id <> new.version_id AND NOT new.versioned
BEGIN
    DELETE FROM object_versions WHERE bucket = new.bucket AND key = new.key AND NOT versioned;
END;

-- A current version that is deleted keeps its blob and scan when it moved to `object_versions`
-- (the move is written first).
DROP TRIGGER objects_release_deleted;
DROP TRIGGER objects_scan_unqueued_deleted;
CREATE TRIGGER objects_deleted AFTER DELETE ON objects
WHEN NOT EXISTS (SELECT 1 FROM object_versions v
                 WHERE v.bucket = old.bucket AND v.key = old.key AND v.version_id = old.version_id)
BEGIN
    INSERT OR IGNORE INTO released_blobs (blob_id) VALUES (old.blob_id);
    DELETE FROM scan_queue WHERE bucket = old.bucket AND key = old.key AND version_id = old.version_id AND dead = 0;
END;

-- A noncurrent version that is deleted releases its blob, unless it became current again.
CREATE TRIGGER object_versions_deleted AFTER DELETE ON object_versions
WHEN NOT old.delete_marker AND NOT EXISTS (SELECT 1 FROM objects o
    WHERE o.bucket = old.bucket AND o.key = old.key AND o.version_id = old.version_id)
BEGIN
    INSERT OR IGNORE INTO released_blobs (blob_id) VALUES (old.blob_id);
    DELETE FROM scan_queue WHERE bucket = old.bucket AND key = old.key AND version_id = old.version_id AND dead = 0;
END;

-- A version made current again keeps its verdict: only an unscanned one is queued.
DROP TRIGGER objects_scan_inserted;
CREATE TRIGGER objects_scan_inserted AFTER INSERT ON objects
WHEN new.sensitivity IS NULL AND (SELECT on_upload FROM scan_settings WHERE id = 1) = 1
BEGIN
    INSERT OR IGNORE INTO scan_queue (bucket, key, version_id, due_ms)
    VALUES (new.bucket, new.key, new.version_id, CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER));
END;
