-- Share links. Only a keyed hash of each token is stored; uses are consumed by one UPDATE.

CREATE TABLE shares (
    id           TEXT PRIMARY KEY NOT NULL,
    token_hash   BLOB NOT NULL UNIQUE,
    method       TEXT NOT NULL,
    bucket       TEXT NOT NULL,
    key          TEXT NOT NULL,
    version_id   TEXT,
    etag         TEXT,
    size         INTEGER,
    created_ms   INTEGER NOT NULL,
    expires_ms   INTEGER NOT NULL,
    max_uses     INTEGER NOT NULL,
    uses_left    INTEGER NOT NULL,
    allow_cidrs  TEXT NOT NULL,
    disposition  TEXT NOT NULL,
    label        TEXT,
    principal    TEXT NOT NULL,
    revoked_ms   INTEGER
) WITHOUT ROWID;
CREATE INDEX shares_by_object ON shares (bucket, key);

CREATE TABLE audit_events (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    at_ms        INTEGER NOT NULL,
    event        TEXT NOT NULL,
    share_id     TEXT,
    principal    TEXT,
    source_ip    TEXT,
    user_agent   TEXT,
    reason       TEXT
);
