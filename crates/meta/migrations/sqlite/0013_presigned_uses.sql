-- Uses of counted presigned URLs (`latchkey presign --max-uses`), keyed by a hash of the URL's
-- signature (never the signature); a row may go once its URL has expired.
CREATE TABLE presigned_uses (
    signature_hash BLOB PRIMARY KEY NOT NULL,
    uses           INTEGER NOT NULL,
    expires_ms     INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX presigned_uses_expiry ON presigned_uses (expires_ms);
