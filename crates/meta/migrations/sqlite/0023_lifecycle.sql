-- Lifecycle. A bucket's configuration (JSON, as the S3 front accepted it); NULL: none.
ALTER TABLE bucket_config ADD COLUMN lifecycle TEXT;

-- One pass over every bucket's rules runs at a time, on the replica that holds this lease
-- (renewed as the pass goes); `cursor_*` is where the pass has got to, so that one cut short
-- (a crash, a lost lease) resumes there. NULL: the next pass starts from the beginning.
CREATE TABLE lifecycle_lease (
    id              INTEGER PRIMARY KEY CHECK (id = 1),
    holder          TEXT,
    lease_until_ms  INTEGER NOT NULL DEFAULT 0,
    cursor_bucket   TEXT,
    cursor_key      TEXT
);
INSERT INTO lifecycle_lease (id) VALUES (1);
