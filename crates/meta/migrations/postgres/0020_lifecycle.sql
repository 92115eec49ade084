-- Lifecycle: the same as the SQLite store (see its 0023_lifecycle.sql).
ALTER TABLE bucket_config ADD COLUMN lifecycle TEXT;

CREATE TABLE lifecycle_lease (
    id              INTEGER PRIMARY KEY CHECK (id = 1),
    holder          TEXT,
    lease_until_ms  BIGINT NOT NULL DEFAULT 0,
    cursor_bucket   TEXT COLLATE "C",
    cursor_key      TEXT COLLATE "C"
);
INSERT INTO lifecycle_lease (id) VALUES (1);
