-- Sensitive-data discovery: the same tables and triggers as the SQLite store (see its
-- 0018_scan.sql for what each holds).
ALTER TABLE objects ADD COLUMN sensitivity TEXT;
ALTER TABLE objects ADD COLUMN scan_partial BOOLEAN NOT NULL DEFAULT false;
ALTER TABLE objects ADD COLUMN sensitivity_tagged BOOLEAN NOT NULL DEFAULT false;
ALTER TABLE objects ADD COLUMN quarantined BOOLEAN NOT NULL DEFAULT false;

CREATE TABLE scan_settings (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    on_upload  BOOLEAN NOT NULL
);
INSERT INTO scan_settings (id, on_upload) VALUES (1, false);

CREATE TABLE scan_queue (
    bucket      TEXT COLLATE "C" NOT NULL,
    key         TEXT COLLATE "C" NOT NULL,
    version_id  TEXT NOT NULL,
    scan_job    TEXT,
    due_ms      BIGINT NOT NULL,
    attempts    BIGINT NOT NULL DEFAULT 0,
    claimed_by  TEXT,
    dead        BOOLEAN NOT NULL DEFAULT false,
    last_error  TEXT,
    PRIMARY KEY (bucket, key, version_id)
);
CREATE INDEX scan_queue_due ON scan_queue (dead, due_ms);
CREATE INDEX scan_queue_by_job ON scan_queue (scan_job);

CREATE TABLE scan_jobs (
    id            TEXT PRIMARY KEY,
    bucket        TEXT COLLATE "C" NOT NULL,
    prefix        TEXT COLLATE "C" NOT NULL,
    criteria      TEXT NOT NULL,
    principal     TEXT NOT NULL,
    created_ms    BIGINT NOT NULL,
    total         BIGINT NOT NULL,
    cancelled_ms  BIGINT
);
CREATE INDEX scan_jobs_by_time ON scan_jobs (created_ms, id);

CREATE FUNCTION queue_object_scan() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF (SELECT on_upload FROM scan_settings WHERE id = 1) THEN
        INSERT INTO scan_queue (bucket, key, version_id, due_ms)
        VALUES (NEW.bucket, NEW.key, NEW.version_id, (extract(epoch FROM clock_timestamp()) * 1000)::bigint)
        ON CONFLICT DO NOTHING;
    END IF;
    RETURN NULL;
END
$$;

CREATE FUNCTION unqueue_object_scan() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM scan_queue
    WHERE bucket = OLD.bucket AND key = OLD.key AND version_id = OLD.version_id AND NOT dead;
    RETURN NULL;
END
$$;

CREATE TRIGGER objects_scan_inserted AFTER INSERT ON objects
    FOR EACH ROW EXECUTE FUNCTION queue_object_scan();
CREATE TRIGGER objects_scan_replaced AFTER UPDATE OF version_id ON objects
    FOR EACH ROW WHEN (OLD.version_id IS DISTINCT FROM NEW.version_id) EXECUTE FUNCTION queue_object_scan();
CREATE TRIGGER objects_scan_unqueued_replaced AFTER UPDATE OF version_id ON objects
    FOR EACH ROW WHEN (OLD.version_id IS DISTINCT FROM NEW.version_id) EXECUTE FUNCTION unqueue_object_scan();
CREATE TRIGGER objects_scan_unqueued_deleted AFTER DELETE ON objects
    FOR EACH ROW EXECUTE FUNCTION unqueue_object_scan();

CREATE TABLE findings (
    id              TEXT PRIMARY KEY,
    bucket          TEXT COLLATE "C" NOT NULL,
    key             TEXT COLLATE "C" NOT NULL,
    version_id      TEXT NOT NULL,
    finding_type    TEXT NOT NULL,
    severity        TEXT NOT NULL,
    detail          TEXT NOT NULL,
    actions         TEXT NOT NULL,
    scanned_ms      BIGINT NOT NULL,
    engine_version  TEXT NOT NULL,
    UNIQUE (bucket, key, version_id)
);
CREATE INDEX findings_by_time ON findings (scanned_ms, id);
