-- Object Lock: the same columns and guards as the SQLite store (see its 0022_object_lock.sql
-- for what each holds and why).
ALTER TABLE buckets ADD COLUMN object_lock TEXT;
ALTER TABLE objects ADD COLUMN lock_mode TEXT;
ALTER TABLE objects ADD COLUMN lock_until_ms BIGINT;
ALTER TABLE objects ADD COLUMN legal_hold BOOLEAN;
ALTER TABLE object_versions ADD COLUMN lock_mode TEXT;
ALTER TABLE object_versions ADD COLUMN lock_until_ms BIGINT;
ALTER TABLE object_versions ADD COLUMN legal_hold BOOLEAN;
ALTER TABLE uploads ADD COLUMN lock_mode TEXT;
ALTER TABLE uploads ADD COLUMN lock_until_ms BIGINT;
ALTER TABLE uploads ADD COLUMN legal_hold BOOLEAN;

CREATE OR REPLACE FUNCTION object_version_replaced() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.versioned OR NEW.versioned THEN
        INSERT INTO object_versions (seq, bucket, key, version_id, blob_id, size, etag, modified_ms, headers,
            user_meta, tags, parts_count, part_sizes, sensitivity, scan_partial, sensitivity_tagged, quarantined,
            versioned, lock_mode, lock_until_ms, legal_hold, delete_marker)
        VALUES (OLD.seq, OLD.bucket, OLD.key, OLD.version_id, OLD.blob_id, OLD.size, OLD.etag, OLD.modified_ms, OLD.headers,
            OLD.user_meta, OLD.tags, OLD.parts_count, OLD.part_sizes, OLD.sensitivity, OLD.scan_partial,
            OLD.sensitivity_tagged, OLD.quarantined, OLD.versioned, OLD.lock_mode, OLD.lock_until_ms, OLD.legal_hold,
            false);
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

-- Refuses to let a version under a legal hold or an unexpired COMPLIANCE retention leave the
-- store (a delete, or a replacement that keeps no copy); a move between the tables is allowed.
CREATE FUNCTION refuse_locked_version() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    -- (NULL columns: no hold, no retention; never NULL itself.)
    locked boolean := OLD.legal_hold IS TRUE OR (OLD.lock_mode = 'COMPLIANCE'
        AND OLD.lock_until_ms > (extract(epoch FROM clock_timestamp()) * 1000)::bigint) IS TRUE;
BEGIN
    IF TG_OP = 'UPDATE' THEN
        IF locked AND NOT (OLD.versioned OR NEW.versioned) THEN
            RAISE EXCEPTION 'latchkey: object version locked';
        END IF;
        RETURN NEW;
    END IF;
    IF NOT locked THEN
        RETURN OLD;
    END IF;
    IF TG_TABLE_NAME = 'objects' THEN
        IF EXISTS (SELECT 1 FROM object_versions v
                   WHERE v.bucket = OLD.bucket AND v.key = OLD.key AND v.version_id = OLD.version_id) THEN
            RETURN OLD;
        END IF;
    ELSIF EXISTS (SELECT 1 FROM objects o
                  WHERE o.bucket = OLD.bucket AND o.key = OLD.key AND o.version_id = OLD.version_id) THEN
        RETURN OLD;
    END IF;
    RAISE EXCEPTION 'latchkey: object version locked';
END
$$;
CREATE TRIGGER objects_locked_deleted BEFORE DELETE ON objects
    FOR EACH ROW EXECUTE FUNCTION refuse_locked_version();
CREATE TRIGGER objects_locked_replaced BEFORE UPDATE OF version_id ON objects
    FOR EACH ROW WHEN (OLD.version_id IS DISTINCT FROM NEW.version_id) EXECUTE FUNCTION refuse_locked_version();
CREATE TRIGGER object_versions_locked_deleted BEFORE DELETE ON object_versions
    FOR EACH ROW EXECUTE FUNCTION refuse_locked_version();
