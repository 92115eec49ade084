-- The whole metadata schema for PostgreSQL: the same tables as the SQLite store.
-- Keys use the "C" collation so that they sort byte-wise, which is S3's listing order.

CREATE TABLE buckets (
    name        TEXT COLLATE "C" PRIMARY KEY,
    region      TEXT NOT NULL,
    created_ms  BIGINT NOT NULL
);

CREATE TABLE objects (
    bucket       TEXT COLLATE "C" NOT NULL REFERENCES buckets(name),
    key          TEXT COLLATE "C" NOT NULL,
    version_id   TEXT NOT NULL,
    blob_id      TEXT NOT NULL,
    size         BIGINT NOT NULL,
    etag         TEXT NOT NULL,
    modified_ms  BIGINT NOT NULL,
    headers      TEXT NOT NULL,
    user_meta    TEXT NOT NULL,
    tags         TEXT NOT NULL,
    parts_count  BIGINT,
    PRIMARY KEY (bucket, key)
);

CREATE TABLE uploads (
    upload_id    TEXT PRIMARY KEY,
    bucket       TEXT COLLATE "C" NOT NULL REFERENCES buckets(name),
    key          TEXT COLLATE "C" NOT NULL,
    initiated_ms BIGINT NOT NULL,
    headers      TEXT NOT NULL,
    user_meta    TEXT NOT NULL,
    tags         TEXT NOT NULL
);
CREATE INDEX uploads_by_key ON uploads (bucket, key, upload_id);

CREATE TABLE upload_parts (
    upload_id    TEXT NOT NULL REFERENCES uploads(upload_id) ON DELETE CASCADE,
    part_number  BIGINT NOT NULL,
    blob_id      TEXT NOT NULL,
    size         BIGINT NOT NULL,
    etag         TEXT NOT NULL,
    modified_ms  BIGINT NOT NULL,
    PRIMARY KEY (upload_id, part_number)
);

CREATE TABLE access_keys (
    access_key_id TEXT PRIMARY KEY,
    secret_key    TEXT NOT NULL,
    principal     TEXT NOT NULL,
    created_ms    BIGINT NOT NULL
);

-- Blobs no record names any more, queued in the transaction that stopped naming them.
CREATE TABLE released_blobs (
    blob_id TEXT PRIMARY KEY
);

CREATE FUNCTION release_old_blob() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO released_blobs (blob_id) VALUES (OLD.blob_id) ON CONFLICT DO NOTHING;
    RETURN NULL;
END
$$;

CREATE TRIGGER objects_release_replaced AFTER UPDATE OF blob_id ON objects
    FOR EACH ROW WHEN (OLD.blob_id IS DISTINCT FROM NEW.blob_id) EXECUTE FUNCTION release_old_blob();
CREATE TRIGGER objects_release_deleted AFTER DELETE ON objects
    FOR EACH ROW EXECUTE FUNCTION release_old_blob();
CREATE TRIGGER parts_release_replaced AFTER UPDATE OF blob_id ON upload_parts
    FOR EACH ROW WHEN (OLD.blob_id IS DISTINCT FROM NEW.blob_id) EXECUTE FUNCTION release_old_blob();
CREATE TRIGGER parts_release_deleted AFTER DELETE ON upload_parts
    FOR EACH ROW EXECUTE FUNCTION release_old_blob();

CREATE TABLE shares (
    id           TEXT PRIMARY KEY,
    token_hash   BYTEA NOT NULL UNIQUE,
    method       TEXT NOT NULL,
    bucket       TEXT COLLATE "C" NOT NULL,
    key          TEXT COLLATE "C" NOT NULL,
    version_id   TEXT,
    etag         TEXT,
    size         BIGINT,
    created_ms   BIGINT NOT NULL,
    expires_ms   BIGINT NOT NULL,
    max_uses     BIGINT NOT NULL,
    uses_left    BIGINT NOT NULL,
    allow_cidrs  TEXT NOT NULL,
    disposition  TEXT NOT NULL,
    label        TEXT,
    principal    TEXT NOT NULL,
    revoked_ms   BIGINT
);
CREATE INDEX shares_by_object ON shares (bucket, key);

CREATE TABLE share_grants (
    share_id    TEXT NOT NULL REFERENCES shares(id) ON DELETE CASCADE,
    source_ip   TEXT NOT NULL,
    granted_ms  BIGINT NOT NULL
);
CREATE INDEX share_grants_by_share ON share_grants (share_id, source_ip, granted_ms);

CREATE TABLE audit_events (
    seq          BIGSERIAL PRIMARY KEY,
    at_ms        BIGINT NOT NULL,
    event        TEXT NOT NULL,
    share_id     TEXT,
    principal    TEXT,
    source_ip    TEXT,
    user_agent   TEXT,
    reason       TEXT
);
