-- A bucket's policy, public access block and tags. A bucket without a row has every public
-- access flag on (the fail-safe reading, should its creation have been cut short before its
-- row was written); a NULL `public_access_block` means DeletePublicAccessBlock removed it.
-- The row goes with its bucket.
CREATE TABLE bucket_config (
    bucket              TEXT PRIMARY KEY NOT NULL REFERENCES buckets (name) ON DELETE CASCADE,
    policy              TEXT,
    public_access_block TEXT,
    tags                TEXT NOT NULL DEFAULT '[]'
) WITHOUT ROWID;

-- Bumped by every change to bucket_config (a bucket's deletion included), so that a reload
-- can tell which snapshot is newer.
CREATE TABLE bucket_config_generation (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    generation INTEGER NOT NULL
);
INSERT INTO bucket_config_generation (id, generation) VALUES (1, 0);

CREATE TRIGGER bucket_config_inserted AFTER INSERT ON bucket_config BEGIN
    UPDATE bucket_config_generation SET generation = generation + 1 WHERE id = 1;
END;
CREATE TRIGGER bucket_config_updated AFTER UPDATE ON bucket_config BEGIN
    UPDATE bucket_config_generation SET generation = generation + 1 WHERE id = 1;
END;
CREATE TRIGGER bucket_config_deleted AFTER DELETE ON bucket_config BEGIN
    UPDATE bucket_config_generation SET generation = generation + 1 WHERE id = 1;
END;
