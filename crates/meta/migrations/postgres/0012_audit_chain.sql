-- The audit trail's hash chain: events are written unchained (by statements and triggers, from
-- any replica) and linked soon after by one replica at a time (an advisory lock): `chain_pos`
-- numbers them 1, 2, 3... and `hash` is SHA-256 over the previous event's hash and this event's
-- fields, so an edit, a deletion, an insertion or a reordering breaks the chain from there on.
-- Digests sign the head of the chain with the server's Ed25519 key, each naming the previous
-- digest's signature.
ALTER TABLE audit_events ADD COLUMN chain_pos BIGINT;
ALTER TABLE audit_events ADD COLUMN hash BYTEA;
CREATE UNIQUE INDEX audit_events_by_position ON audit_events (chain_pos);
CREATE INDEX audit_events_unchained ON audit_events (seq) WHERE chain_pos IS NULL;

CREATE TABLE audit_digests (
    id             BIGSERIAL PRIMARY KEY,
    at_ms          BIGINT NOT NULL,
    first_pos      BIGINT NOT NULL UNIQUE,
    last_pos       BIGINT NOT NULL,
    last_hash      BYTEA NOT NULL,
    prev_signature BYTEA,
    signature      BYTEA NOT NULL
);
