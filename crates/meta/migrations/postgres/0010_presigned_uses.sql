-- Uses of counted presigned URLs (`latchkey presign --max-uses`), keyed by a hash of the URL's
-- signature (never the signature); a row may go once its URL has expired.
CREATE TABLE presigned_uses (
    signature_hash BYTEA PRIMARY KEY NOT NULL,
    uses           BIGINT NOT NULL,
    expires_ms     BIGINT NOT NULL
);
CREATE INDEX presigned_uses_expiry ON presigned_uses (expires_ms);
