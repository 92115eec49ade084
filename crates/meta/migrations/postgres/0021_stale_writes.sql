-- A new version is written as the bucket's versioning is when it commits (see the SQLite
-- store's 0024_stale_writes.sql). The bucket row is read FOR SHARE, so a change of versioning
-- waits for writes in flight and they for it.
CREATE FUNCTION refuse_stale_write() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    enabled boolean;
BEGIN
    IF NEW.seq IS NOT NULL THEN
        RETURN NEW;
    END IF;
    SELECT versioning = 'Enabled' INTO enabled FROM buckets WHERE name = NEW.bucket FOR SHARE;
    IF NEW.versioned IS DISTINCT FROM COALESCE(enabled, false) THEN
        RAISE EXCEPTION 'latchkey: versioning changed during the write';
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER objects_written_as_versioning_says BEFORE INSERT ON objects
    FOR EACH ROW EXECUTE FUNCTION refuse_stale_write();
