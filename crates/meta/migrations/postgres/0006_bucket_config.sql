-- A bucket's policy, public access block and tags. A bucket without a row has every public
-- access flag on (the fail-safe reading, should its creation have been cut short before its
-- row was written); a NULL `public_access_block` means DeletePublicAccessBlock removed it.
-- The row goes with its bucket.
CREATE TABLE bucket_config (
    bucket              TEXT COLLATE "C" PRIMARY KEY REFERENCES buckets (name) ON DELETE CASCADE,
    policy              TEXT,
    public_access_block TEXT,
    tags                TEXT NOT NULL DEFAULT '[]'
);

-- Bumped by every change to bucket_config (a bucket's deletion included); its trigger tells
-- every replica (delivered when the transaction commits), which then reloads its cache.
CREATE TABLE bucket_config_generation (
    id         BIGINT PRIMARY KEY CHECK (id = 1),
    generation BIGINT NOT NULL
);
INSERT INTO bucket_config_generation (id, generation) VALUES (1, 0);

CREATE FUNCTION bump_bucket_config_generation() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE bucket_config_generation SET generation = generation + 1 WHERE id = 1;
    RETURN NULL;
END
$$;
CREATE TRIGGER bucket_config_changed AFTER INSERT OR UPDATE OR DELETE ON bucket_config
    FOR EACH ROW EXECUTE FUNCTION bump_bucket_config_generation();

CREATE FUNCTION notify_bucket_config_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('latchkey_bucket_config', NEW.generation::text);
    RETURN NULL;
END
$$;
CREATE TRIGGER bucket_config_generation_changed AFTER UPDATE ON bucket_config_generation
    FOR EACH ROW EXECUTE FUNCTION notify_bucket_config_change();
