-- Versioning: the same tables and triggers as the SQLite store (see its 0021_versioning.sql for
-- what each holds and why).
ALTER TABLE buckets ADD COLUMN versioning TEXT;
ALTER TABLE objects ADD COLUMN versioned BOOLEAN NOT NULL DEFAULT false;
ALTER TABLE objects ADD COLUMN part_sizes TEXT;
ALTER TABLE objects ADD COLUMN seq BIGINT;

CREATE TABLE object_versions (
    seq                 BIGSERIAL PRIMARY KEY,
    bucket              TEXT COLLATE "C" NOT NULL REFERENCES buckets(name),
    key                 TEXT COLLATE "C" NOT NULL,
    version_id          TEXT NOT NULL,
    blob_id             TEXT NOT NULL,
    size                BIGINT NOT NULL,
    etag                TEXT NOT NULL,
    modified_ms         BIGINT NOT NULL,
    headers             TEXT NOT NULL,
    user_meta           TEXT NOT NULL,
    tags                TEXT NOT NULL,
    parts_count         BIGINT,
    part_sizes          TEXT,
    sensitivity         TEXT,
    scan_partial        BOOLEAN NOT NULL DEFAULT false,
    sensitivity_tagged  BOOLEAN NOT NULL DEFAULT false,
    quarantined         BOOLEAN NOT NULL DEFAULT false,
    versioned           BOOLEAN NOT NULL,
    delete_marker       BOOLEAN NOT NULL
);
CREATE UNIQUE INDEX object_versions_by_id ON object_versions (bucket, key, version_id);
CREATE INDEX object_versions_by_key ON object_versions (bucket, key, seq DESC);
CREATE INDEX object_versions_blob ON object_versions (blob_id);

DROP TRIGGER objects_release_replaced ON objects;
DROP TRIGGER objects_scan_unqueued_replaced ON objects;
DROP TRIGGER objects_release_deleted ON objects;
DROP TRIGGER objects_scan_unqueued_deleted ON objects;

CREATE FUNCTION object_version_replaced() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.versioned OR NEW.versioned THEN
        INSERT INTO object_versions (seq, bucket, key, version_id, blob_id, size, etag, modified_ms, headers,
            user_meta, tags, parts_count, part_sizes, sensitivity, scan_partial, sensitivity_tagged, quarantined,
            versioned, delete_marker)
        VALUES (OLD.seq, OLD.bucket, OLD.key, OLD.version_id, OLD.blob_id, OLD.size, OLD.etag, OLD.modified_ms, OLD.headers,
            OLD.user_meta, OLD.tags, OLD.parts_count, OLD.part_sizes, OLD.sensitivity, OLD.scan_partial,
            OLD.sensitivity_tagged, OLD.quarantined, OLD.versioned, false);
    ELSE
        INSERT INTO released_blobs (blob_id) VALUES (OLD.blob_id) ON CONFLICT DO NOTHING;
        DELETE FROM scan_queue
        WHERE bucket = OLD.bucket AND key = OLD.key AND version_id = OLD.version_id AND NOT dead;
    END IF;
    IF NOT NEW.versioned THEN
        DELETE FROM object_versions WHERE bucket = NEW.bucket AND key = NEW.key AND NOT versioned;
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER objects_version_replaced AFTER UPDATE OF version_id ON objects
    FOR EACH ROW WHEN (OLD.version_id IS DISTINCT FROM NEW.version_id) EXECUTE FUNCTION object_version_replaced();

CREATE FUNCTION null_version_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM object_versions WHERE bucket = NEW.bucket AND key = NEW.key AND NOT versioned;
    RETURN NULL;
END
$$;
CREATE TRIGGER objects_null_version_inserted AFTER INSERT ON objects
    FOR EACH ROW WHEN (NOT NEW.versioned) EXECUTE FUNCTION null_version_inserted();

-- Releases a deleted row's blob and unqueues its scan, unless the same version lives on in the
-- other table (moved to `object_versions` on a versioned delete, or made current again).
CREATE FUNCTION version_dropped() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_TABLE_NAME = 'objects' THEN
        IF EXISTS (SELECT 1 FROM object_versions v
                   WHERE v.bucket = OLD.bucket AND v.key = OLD.key AND v.version_id = OLD.version_id) THEN
            RETURN NULL;
        END IF;
    ELSIF OLD.delete_marker OR EXISTS (SELECT 1 FROM objects o
              WHERE o.bucket = OLD.bucket AND o.key = OLD.key AND o.version_id = OLD.version_id) THEN
        RETURN NULL;
    END IF;
    INSERT INTO released_blobs (blob_id) VALUES (OLD.blob_id) ON CONFLICT DO NOTHING;
    DELETE FROM scan_queue WHERE bucket = OLD.bucket AND key = OLD.key AND version_id = OLD.version_id AND NOT dead;
    RETURN NULL;
END
$$;
CREATE TRIGGER objects_deleted AFTER DELETE ON objects
    FOR EACH ROW EXECUTE FUNCTION version_dropped();
CREATE TRIGGER object_versions_deleted AFTER DELETE ON object_versions
    FOR EACH ROW EXECUTE FUNCTION version_dropped();

-- Every change to a key's versions holds one lock per key until its transaction ends: a write
-- takes it here, before its insert or upsert looks for a conflict; the version store's deletes
-- take it first (`VersionStore`). Without it, READ COMMITTED lets a delete that restores a
-- version and another that deletes it interleave, and a blob be released under a live version.
-- (Class 74111; the audit linker's lock is class 74110.)
CREATE FUNCTION lock_object_key() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(74111, hashtext(NEW.bucket || '/' || NEW.key));
    RETURN NEW;
END
$$;
CREATE TRIGGER objects_key_locked BEFORE INSERT ON objects FOR EACH ROW EXECUTE FUNCTION lock_object_key();

-- A version made current again keeps its verdict: only an unscanned one is queued.
CREATE OR REPLACE FUNCTION queue_object_scan() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.sensitivity IS NULL AND (SELECT on_upload FROM scan_settings WHERE id = 1) THEN
        INSERT INTO scan_queue (bucket, key, version_id, due_ms)
        VALUES (NEW.bucket, NEW.key, NEW.version_id, (extract(epoch FROM clock_timestamp()) * 1000)::bigint)
        ON CONFLICT DO NOTHING;
    END IF;
    RETURN NULL;
END
$$;

-- A version that joins the history without a place yet (it was written as current) gets the
-- next one; one made current and back keeps its own (SQLite's AUTOINCREMENT does the same).
CREATE FUNCTION number_version() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.seq IS NULL THEN
        NEW.seq := nextval(pg_get_serial_sequence('object_versions', 'seq'));
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER object_versions_numbered BEFORE INSERT ON object_versions
    FOR EACH ROW EXECUTE FUNCTION number_version();
