-- The IAM directory, access keys with sealed secrets, virtual MFA devices and STS sessions.
-- Directory entries are JSON documents keyed by kind and case-folded name (IAM names are unique
-- regardless of case); `revision` makes read-modify-write safe.
CREATE TABLE iam_directory (
    kind      TEXT NOT NULL,
    name_key  TEXT NOT NULL,
    name      TEXT NOT NULL,
    body      TEXT NOT NULL,
    revision  INTEGER NOT NULL,
    PRIMARY KEY (kind, name_key)
) WITHOUT ROWID;

-- A user has at most two keys: new keys take slot 1 or 2, and (user, slot) is unique.
CREATE TABLE iam_access_keys (
    access_key_id     TEXT PRIMARY KEY NOT NULL,
    user_name         TEXT NOT NULL,
    slot              INTEGER NOT NULL CHECK (slot >= 1),
    secret_sealed     BLOB NOT NULL,
    active            INTEGER NOT NULL,
    created_ms        INTEGER NOT NULL,
    last_used_ms      INTEGER,
    last_used_service TEXT,
    UNIQUE (user_name, slot)
);

CREATE TABLE iam_mfa_devices (
    serial       TEXT PRIMARY KEY NOT NULL,
    seed_sealed  BLOB NOT NULL,
    created_ms   INTEGER NOT NULL,
    user_name    TEXT,
    enabled_ms   INTEGER,
    last_step    INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;

CREATE TABLE sts_sessions (
    access_key_id TEXT PRIMARY KEY NOT NULL,
    secret_sealed BLOB NOT NULL,
    token_hash    BLOB NOT NULL,
    body          TEXT NOT NULL,
    issued_ms     INTEGER NOT NULL,
    expires_ms    INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX sts_sessions_by_expiry ON sts_sessions (expires_ms);

-- Bumped in the transaction of every directory or access-key change.
CREATE TABLE iam_generation (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    generation INTEGER NOT NULL
);
INSERT INTO iam_generation (id, generation) VALUES (1, 0);

CREATE TABLE server_settings (
    name  TEXT PRIMARY KEY NOT NULL,
    value TEXT NOT NULL
) WITHOUT ROWID;
