-- Presigned URLs refused before their expiry (`latchkey presign revoke`): one URL by a hash of
-- its signature (never the signature), or every URL an access key signed before a time. A row
-- may go once every URL it refuses has expired (`expires_ms`).
CREATE TABLE presigned_revocations (
    id               INTEGER PRIMARY KEY,
    signature_hash   BLOB UNIQUE,
    access_key_id    TEXT,
    signed_before_ms INTEGER,
    expires_ms       INTEGER NOT NULL,
    CHECK ((signature_hash IS NULL) <> (access_key_id IS NULL AND signed_before_ms IS NULL))
);
CREATE INDEX presigned_revocations_expiry ON presigned_revocations (expires_ms);

-- Bumped by every new revocation, so that each server's copy in memory is reloaded.
CREATE TABLE presigned_revocation_generation (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    generation INTEGER NOT NULL
);
INSERT INTO presigned_revocation_generation (id, generation) VALUES (1, 0);
CREATE TRIGGER presigned_revoked AFTER INSERT ON presigned_revocations
BEGIN
    UPDATE presigned_revocation_generation SET generation = generation + 1 WHERE id = 1;
END;
