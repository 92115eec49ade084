-- Buckets, objects, multipart uploads and access keys.
-- Keys compare byte-wise (SQLite's BINARY collation on UTF-8), which is S3's listing order.

CREATE TABLE buckets (
    name        TEXT PRIMARY KEY NOT NULL,
    region      TEXT NOT NULL,
    created_ms  INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE objects (
    bucket       TEXT NOT NULL REFERENCES buckets(name),
    key          TEXT NOT NULL,
    version_id   TEXT NOT NULL,
    blob_id      TEXT NOT NULL,
    size         INTEGER NOT NULL,
    etag         TEXT NOT NULL,
    modified_ms  INTEGER NOT NULL,
    headers      TEXT NOT NULL,
    user_meta    TEXT NOT NULL,
    tags         TEXT NOT NULL,
    parts_count  INTEGER,
    PRIMARY KEY (bucket, key)
) WITHOUT ROWID;

CREATE TABLE uploads (
    upload_id    TEXT PRIMARY KEY NOT NULL,
    bucket       TEXT NOT NULL REFERENCES buckets(name),
    key          TEXT NOT NULL,
    initiated_ms INTEGER NOT NULL,
    headers      TEXT NOT NULL,
    user_meta    TEXT NOT NULL,
    tags         TEXT NOT NULL
) WITHOUT ROWID;
CREATE INDEX uploads_by_key ON uploads (bucket, key, upload_id);

CREATE TABLE upload_parts (
    upload_id    TEXT NOT NULL REFERENCES uploads(upload_id) ON DELETE CASCADE,
    part_number  INTEGER NOT NULL,
    blob_id      TEXT NOT NULL,
    size         INTEGER NOT NULL,
    etag         TEXT NOT NULL,
    modified_ms  INTEGER NOT NULL,
    PRIMARY KEY (upload_id, part_number)
) WITHOUT ROWID;

CREATE TABLE access_keys (
    access_key_id TEXT PRIMARY KEY NOT NULL,
    secret_key    TEXT NOT NULL,
    principal     TEXT NOT NULL,
    created_ms    INTEGER NOT NULL
) WITHOUT ROWID;
