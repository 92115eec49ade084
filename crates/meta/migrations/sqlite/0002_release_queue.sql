-- Blobs no record names any more, recorded in the same transaction that stopped naming them,
-- so a crash between commit and file deletion cannot leak them. The blob collector deletes the
-- files, then these rows.

CREATE TABLE released_blobs (
    blob_id TEXT PRIMARY KEY NOT NULL
) WITHOUT ROWID;

CREATE TRIGGER objects_release_replaced AFTER UPDATE OF blob_id ON objects
WHEN old.blob_id <> new.blob_id
BEGIN
    INSERT OR IGNORE INTO released_blobs (blob_id) VALUES (old.blob_id);
END;

CREATE TRIGGER objects_release_deleted AFTER DELETE ON objects
BEGIN
    INSERT OR IGNORE INTO released_blobs (blob_id) VALUES (old.blob_id);
END;

CREATE TRIGGER parts_release_replaced AFTER UPDATE OF blob_id ON upload_parts
WHEN old.blob_id <> new.blob_id
BEGIN
    INSERT OR IGNORE INTO released_blobs (blob_id) VALUES (old.blob_id);
END;

CREATE TRIGGER parts_release_deleted AFTER DELETE ON upload_parts
BEGIN
    INSERT OR IGNORE INTO released_blobs (blob_id) VALUES (old.blob_id);
END;
