-- Sensitive-data discovery. Each object version carries what the scanner concluded about it
-- (reads honour it): the highest severity found (NULL until scanned, 'None' when clean),
-- whether some of it could not be read (binary entries, encrypted ones), whether the
-- `latchkey:sensitivity` tag is shown, and whether it is quarantined. A new version starts
-- unscanned (the object upserts reset these).
ALTER TABLE objects ADD COLUMN sensitivity TEXT;
ALTER TABLE objects ADD COLUMN scan_partial INTEGER NOT NULL DEFAULT 0;
ALTER TABLE objects ADD COLUMN sensitivity_tagged INTEGER NOT NULL DEFAULT 0;
ALTER TABLE objects ADD COLUMN quarantined INTEGER NOT NULL DEFAULT 0;

-- Whether every new object version is queued for a scan (the server writes it at start).
CREATE TABLE scan_settings (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    on_upload  INTEGER NOT NULL
);
INSERT INTO scan_settings (id, on_upload) VALUES (1, 0);

-- The scan queue: one row per object version waiting for a scan, queued by the triggers below
-- in the transaction that writes the version (due at once, in the order written), so no upload
-- escapes it. A worker claims a row
-- by naming itself in `claimed_by` and moving `due_ms` to the end of its lease; a lease that
-- runs out (a crashed worker) makes the row due again. `attempts` counts claims; a row that
-- failed too often is kept `dead` with its last error. `scan_job` names the on-demand scan job
-- that asked for the scan, if one did.
CREATE TABLE scan_queue (
    bucket      TEXT NOT NULL,
    key         TEXT NOT NULL,
    version_id  TEXT NOT NULL,
    scan_job    TEXT,
    due_ms      INTEGER NOT NULL,
    attempts    INTEGER NOT NULL DEFAULT 0,
    claimed_by  TEXT,
    dead        INTEGER NOT NULL DEFAULT 0,
    last_error  TEXT,
    PRIMARY KEY (bucket, key, version_id)
);
CREATE INDEX scan_queue_due ON scan_queue (dead, due_ms);
CREATE INDEX scan_queue_by_job ON scan_queue (scan_job);

-- On-demand scan jobs (`latchkey scan-job create`): the versions they chose are queued with
-- their id; progress is read from the queue.
CREATE TABLE scan_jobs (
    id            TEXT PRIMARY KEY NOT NULL,
    bucket        TEXT NOT NULL,
    prefix        TEXT NOT NULL,
    criteria      TEXT NOT NULL,
    principal     TEXT NOT NULL,
    created_ms    INTEGER NOT NULL,
    total         INTEGER NOT NULL,
    cancelled_ms  INTEGER
);
CREATE INDEX scan_jobs_by_time ON scan_jobs (created_ms, id);

CREATE TRIGGER objects_scan_inserted AFTER INSERT ON objects
WHEN (SELECT on_upload FROM scan_settings WHERE id = 1) = 1
BEGIN
    INSERT OR IGNORE INTO scan_queue (bucket, key, version_id, due_ms)
    VALUES (new.bucket, new.key, new.version_id, CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER));
END;

CREATE TRIGGER objects_scan_replaced AFTER UPDATE OF version_id ON objects
WHEN old.version_id <> new.version_id AND (SELECT on_upload FROM scan_settings WHERE id = 1) = 1
BEGIN
    INSERT OR IGNORE INTO scan_queue (bucket, key, version_id, due_ms)
    VALUES (new.bucket, new.key, new.version_id, CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER));
END;

-- A version that is replaced or deleted needs no scan any more (a dead row stays, as a record).
CREATE TRIGGER objects_scan_unqueued_replaced AFTER UPDATE OF version_id ON objects
WHEN old.version_id <> new.version_id
BEGIN
    DELETE FROM scan_queue
    WHERE bucket = old.bucket AND key = old.key AND version_id = old.version_id AND dead = 0;
END;

CREATE TRIGGER objects_scan_unqueued_deleted AFTER DELETE ON objects
BEGIN
    DELETE FROM scan_queue
    WHERE bucket = old.bucket AND key = old.key AND version_id = old.version_id AND dead = 0;
END;

-- Findings: one per object version in which the scanner found sensitive data. They outlive the
-- object (a record of what was stored), and are listed newest first.
CREATE TABLE findings (
    id              TEXT PRIMARY KEY NOT NULL,
    bucket          TEXT NOT NULL,
    key             TEXT NOT NULL,
    version_id      TEXT NOT NULL,
    finding_type    TEXT NOT NULL,
    severity        TEXT NOT NULL,
    detail          TEXT NOT NULL,
    actions         TEXT NOT NULL,
    scanned_ms      INTEGER NOT NULL,
    engine_version  TEXT NOT NULL,
    UNIQUE (bucket, key, version_id)
);
CREATE INDEX findings_by_time ON findings (scanned_ms, id);
