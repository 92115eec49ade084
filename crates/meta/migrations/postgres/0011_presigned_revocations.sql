-- Presigned URLs refused before their expiry (`latchkey presign revoke`): one URL by a hash of
-- its signature (never the signature), or every URL an access key signed before a time. A row
-- may go once every URL it refuses has expired (`expires_ms`).
CREATE TABLE presigned_revocations (
    id               BIGSERIAL PRIMARY KEY,
    signature_hash   BYTEA UNIQUE,
    access_key_id    TEXT,
    signed_before_ms BIGINT,
    expires_ms       BIGINT NOT NULL,
    CHECK ((signature_hash IS NULL) <> (access_key_id IS NULL AND signed_before_ms IS NULL))
);
CREATE INDEX presigned_revocations_expiry ON presigned_revocations (expires_ms);

-- Bumped by every new revocation; its trigger tells every replica (when the transaction
-- commits), which then reloads its copy in memory.
CREATE TABLE presigned_revocation_generation (
    id         BIGINT PRIMARY KEY CHECK (id = 1),
    generation BIGINT NOT NULL
);
INSERT INTO presigned_revocation_generation (id, generation) VALUES (1, 0);

CREATE FUNCTION bump_presigned_revocation_generation() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE presigned_revocation_generation SET generation = generation + 1 WHERE id = 1;
    RETURN NULL;
END
$$;
CREATE TRIGGER presigned_revoked AFTER INSERT ON presigned_revocations
    FOR EACH ROW EXECUTE FUNCTION bump_presigned_revocation_generation();

CREATE FUNCTION notify_presigned_revocation() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('latchkey_presigned', NEW.generation::text);
    RETURN NULL;
END
$$;
CREATE TRIGGER presigned_revocation_generation_changed AFTER UPDATE ON presigned_revocation_generation
    FOR EACH ROW EXECUTE FUNCTION notify_presigned_revocation();
