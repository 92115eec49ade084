-- The IAM directory, access keys with sealed secrets, virtual MFA devices and STS sessions.
-- Directory entries are JSON documents keyed by kind and case-folded name (IAM names are unique
-- regardless of case); `revision` makes read-modify-write safe.
CREATE TABLE iam_directory (
    kind      TEXT NOT NULL,
    name_key  TEXT NOT NULL,
    name      TEXT NOT NULL,
    body      TEXT NOT NULL,
    revision  BIGINT NOT NULL,
    PRIMARY KEY (kind, name_key)
);

-- A user has at most two keys: new keys take slot 1 or 2, and (user, slot) is unique.
CREATE TABLE iam_access_keys (
    access_key_id     TEXT PRIMARY KEY,
    user_name         TEXT NOT NULL,
    slot              BIGINT NOT NULL CHECK (slot >= 1),
    secret_sealed     BYTEA NOT NULL,
    active            BOOLEAN NOT NULL,
    created_ms        BIGINT NOT NULL,
    last_used_ms      BIGINT,
    last_used_service TEXT,
    UNIQUE (user_name, slot)
);

CREATE TABLE iam_mfa_devices (
    serial       TEXT PRIMARY KEY,
    seed_sealed  BYTEA NOT NULL,
    created_ms   BIGINT NOT NULL,
    user_name    TEXT,
    enabled_ms   BIGINT,
    last_step    BIGINT NOT NULL DEFAULT 0
);

CREATE TABLE sts_sessions (
    access_key_id TEXT PRIMARY KEY,
    secret_sealed BYTEA NOT NULL,
    token_hash    BYTEA NOT NULL,
    body          TEXT NOT NULL,
    issued_ms     BIGINT NOT NULL,
    expires_ms    BIGINT NOT NULL
);
CREATE INDEX sts_sessions_by_expiry ON sts_sessions (expires_ms);

-- Bumped in the transaction of every directory or access-key change; the trigger tells every
-- replica (delivered when the transaction commits).
CREATE TABLE iam_generation (
    id         BIGINT PRIMARY KEY CHECK (id = 1),
    generation BIGINT NOT NULL
);
INSERT INTO iam_generation (id, generation) VALUES (1, 0);

CREATE FUNCTION notify_identity_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('latchkey_identity', NEW.generation::text);
    RETURN NULL;
END
$$;
CREATE TRIGGER identity_changed AFTER UPDATE ON iam_generation
    FOR EACH ROW EXECUTE FUNCTION notify_identity_change();

CREATE TABLE server_settings (
    name  TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
